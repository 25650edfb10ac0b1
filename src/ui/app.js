/* dars profiles: "whose turn is it?" on a shared phone. Everything stays in localStorage on
   this phone; nothing here ever talks to the network. ES5 for old phones; the pages work
   without it. */
(function () {
  "use strict";
  var KEY = "dars.profiles.v1";
  var store = null;
  try {
    store = window.localStorage;
    store.getItem(KEY);
  } catch (e) {
    /* No storage here (some file:// viewers): hide what needs it; the page reads as it is. */
    var hide = function () {
      var parts = document.querySelectorAll("#who, button.done");
      for (var i = 0; i < parts.length; i++) { parts[i].hidden = true; }
    };
    if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", hide); } else { hide(); }
    return;
  }
  function load() {
    var data = null;
    try { data = JSON.parse(store.getItem(KEY) || "null"); } catch (e) { data = null; }
    if (!data || !data.list) { data = { cur: null, list: [] }; }
    return data;
  }
  function save(data) {
    try { store.setItem(KEY, JSON.stringify(data)); } catch (e) { /* full: keep going */ }
  }
  function current(data) {
    for (var i = 0; i < data.list.length; i++) {
      if (data.list[i].id === data.cur) { return data.list[i]; }
    }
    return null;
  }
  function $(id) { return document.getElementById(id); }
  function each(selector, f) {
    var found = document.querySelectorAll(selector);
    for (var i = 0; i < found.length; i++) { f(found[i]); }
  }
  function el(tag, text) {
    var e = document.createElement(tag);
    if (text) { e.appendChild(document.createTextNode(text)); }
    return e;
  }

  function render() {
    var data = load();
    var who = current(data);
    var list = $("who-list");
    if (list) {
      while (list.firstChild) { list.removeChild(list.firstChild); }
      for (var i = 0; i < data.list.length; i++) {
        var b = el("button", data.list[i].name);
        b.type = "button";
        b.className = "who-name";
        b.setAttribute("aria-pressed", data.list[i].id === data.cur ? "true" : "false");
        b.setAttribute("data-id", data.list[i].id);
        b.onclick = pick;
        list.appendChild(b);
      }
    }
    each("[data-done]", function (b) {
      var on = !!(who && who.done[b.getAttribute("data-done")]);
      b.hidden = false;
      b.setAttribute("aria-pressed", on ? "true" : "false");
      b.textContent = b.getAttribute(on ? "data-on" : "data-off");
    });
    var mine = $("mine");
    if (mine && who) {
      var ul = $("mine-list");
      while (ul.firstChild) { ul.removeChild(ul.firstChild); }
      var ids = [];
      for (var id in who.saved) { if (who.saved.hasOwnProperty(id)) { ids.push(id); } }
      for (var j = 0; j < ids.length; j++) {
        var li = el("li");
        var a = el("a", who.saved[ids[j]] + (who.done[ids[j]] ? " \u2713" : ""));
        a.href = "/card/" + encodeURIComponent(ids[j]);
        li.appendChild(a);
        ul.appendChild(li);
      }
      $("mine-empty").hidden = ids.length > 0;
      mine.hidden = false;
    } else if (mine) {
      mine.hidden = true;
    }
  }

  function pick() {
    var data = load();
    data.cur = this.getAttribute("data-id");
    save(data);
    render();
  }

  function add() {
    var input = $("who-input");
    var name = input.value.replace(/^\s+|\s+$/g, "").slice(0, 24);
    if (!name) { input.focus(); return; }
    var data = load();
    var id = "p" + new Date().getTime().toString(36) + Math.floor(Math.random() * 1000);
    data.list.push({ id: id, name: name, saved: {}, done: {} });
    data.cur = id;
    save(data);
    input.value = "";
    render();
  }

  /* Marks need to know whose they are: without a profile, ask for a name first. */
  function withProfile(f) {
    var data = load();
    var who = current(data);
    if (!who) {
      var input = $("who-input");
      if (input) { input.focus(); }
      return;
    }
    f(who);
    save(data);
    render();
  }

  function setUp() {
    var bar = $("who");
    if (bar) {
      bar.hidden = false;
      $("who-add").onclick = add;
      $("who-input").onkeydown = function (e) {
        if (e.keyCode === 13) { e.preventDefault(); add(); }
      };
    }
    each("[data-done]", function (b) {
      b.onclick = function () {
        var lesson = b.getAttribute("data-done");
        withProfile(function (who) {
          if (who.done[lesson]) { delete who.done[lesson]; } else { who.done[lesson] = 1; }
        });
      };
    });
    each("a[data-save]", function (a) {
      a.addEventListener("click", function () {
        var ids = a.getAttribute("data-save").split(" ");
        var titles = (a.getAttribute("data-titles") || "").split("\n");
        var data = load();
        var who = current(data);
        if (!who) { return; } /* the download goes on; nobody to note it for */
        for (var i = 0; i < ids.length; i++) { who.saved[ids[i]] = titles[i] || ids[i]; }
        save(data);
      });
    });
    render();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", setUp);
  } else {
    setUp();
  }
})();
