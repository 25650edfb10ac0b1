#!/usr/bin/env python3
"""Writes N small lesson folders (lesson.toml + index.html + a picture) into DIR, for measuring
how a store with many lessons starts. Usage: deploy/gen-lessons.py DIR [N]"""
import os
import sys

def main():
    out = sys.argv[1]
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 10_000
    subjects = ["Riyaziyyat", "Fizika", "Biologiya", "Tarix", "Coğrafiya", "Informatika"]
    for i in range(count):
        lesson_id = f"gen-{i:05d}"
        d = os.path.join(out, lesson_id)
        os.makedirs(d, exist_ok=True)
        grade = 1 + i % 11
        with open(os.path.join(d, "lesson.toml"), "w", encoding="utf-8") as f:
            f.write(
                f'id = "{lesson_id}"\ntitle = "Dərs {i}"\nlanguage = "{["az", "ru", "en"][i % 3]}"\n'
                f'grade = {grade}\nsubject = "{subjects[i % len(subjects)]}"\nsummary = "Yaradılmış dərs {i}"\n'
                f"order = {i}\n"
            )
        with open(os.path.join(d, "index.html"), "w", encoding="utf-8") as f:
            f.write(f"<!doctype html><meta charset=utf-8><title>Dərs {i}</title>"
                    f"<h1>Dərs {i}</h1><p>{'Bu dərsin mətni. ' * (20 + i % 50)}</p><img src=p.svg>\n")
        with open(os.path.join(d, "p.svg"), "w", encoding="utf-8") as f:
            f.write(f'<svg xmlns="http://www.w3.org/2000/svg"><circle r="{i % 97 + 1}"/></svg>\n')

if __name__ == "__main__":
    main()
