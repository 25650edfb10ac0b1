//! The one translation table of the phone UI: every string in Azerbaijani, Russian and
//! English, with `{}` where a value goes. A test checks that every key has all three and the
//! same placeholders in each.

/// A language of the interface. Azerbaijani comes first and is the default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Lang {
    Az,
    Ru,
    En,
}

impl Lang {
    pub const ALL: [Lang; 3] = [Lang::Az, Lang::Ru, Lang::En];

    pub fn code(self) -> &'static str {
        match self {
            Lang::Az => "az",
            Lang::Ru => "ru",
            Lang::En => "en",
        }
    }

    /// `az`, `ru`, `en`, or a tag starting with one of them (`ru-RU`, `az-Latn-AZ`).
    pub fn from_tag(tag: &str) -> Option<Lang> {
        let primary = tag.trim().split(['-', '_']).next()?.to_ascii_lowercase();
        Lang::ALL.into_iter().find(|l| l.code() == primary)
    }

    /// The language's name in itself.
    pub fn native_name(self) -> &'static str {
        match self {
            Lang::Az => "Azərbaycanca",
            Lang::Ru => "Русский",
            Lang::En => "English",
        }
    }

    fn index(self) -> usize {
        self as usize
    }

    /// The text of `key` in this language: a phone page's [`Text`], or any other table of
    /// [`Words`] (the console's).
    pub fn t(self, key: impl Words) -> &'static str {
        key.word(self)
    }

    /// The text of `key` with each `{}` replaced by the next of `args`.
    pub fn fill(self, key: Text, args: &[&str]) -> String {
        let mut out = String::new();
        let mut args = args.iter();
        let mut rest = self.t(key);
        while let Some(at) = rest.find("{}") {
            out.push_str(&rest[..at]);
            out.push_str(args.next().copied().unwrap_or(""));
            rest = &rest[at + 2..];
        }
        out.push_str(rest);
        out
    }
}

/// A table of strings in the three languages.
pub trait Words: Copy {
    fn word(self, lang: Lang) -> &'static str;
}

impl Words for Text {
    fn word(self, lang: Lang) -> &'static str {
        self.row()[lang.index()]
    }
}

macro_rules! table {
    ($($key:ident => [$az:expr, $ru:expr, $en:expr],)*) => {
        /// A string of the interface.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Text { $($key,)* }

        impl Text {
            pub const ALL: &'static [Text] = &[$(Text::$key,)*];

            fn row(self) -> [&'static str; 3] {
                match self { $(Text::$key => [$az, $ru, $en],)* }
            }
        }
    };
}

table! {
    SiteTitle => ["Dərslər", "Уроки", "Lessons"],
    SkipToContent => ["Əsas hissəyə keç", "Перейти к содержанию", "Skip to content"],
    ChooseLanguage => ["Dil", "Язык", "Language"],
    ChooseGrade => ["Sinfini seç", "Выбери класс", "Choose your grade"],
    ChooseSubject => ["Fənni seç", "Выбери предмет", "Choose a subject"],
    OtherLanguages => ["Başqa dillərdə dərslər", "Уроки на других языках", "Lessons in other languages"],
    NoLessons => ["Hələ dərs yoxdur.", "Уроков пока нет.", "No lessons yet."],
    LessonOne => ["dərs", "урок", "lesson"],
    LessonFew => ["dərs", "урока", "lessons"],
    LessonMany => ["dərs", "уроков", "lessons"],
    Home => ["Ana səhifə", "Главная", "Home"],
    Breadcrumb => ["Harada olduğun", "Где ты сейчас", "Where you are"],
    LessonsIn => ["{} dilində dərslər", "Уроки: {}", "Lessons in {}"],
    SearchLabel => ["Dərs axtar", "Найти урок", "Search lessons"],
    SearchButton => ["Axtar", "Найти", "Search"],
    SearchResults => ["«{}» üçün nəticələr", "Результаты по запросу «{}»", "Results for “{}”"],
    SearchNothing => ["Heç nə tapılmadı. Sözü başqa cür yaz və ya daha qısa axtar.", "Ничего не найдено. Попробуй другое слово или короче.", "Nothing found. Try another word, or a shorter one."],
    SearchHint => ["Azərbaycan hərfləri olmadan da yazmaq olar: «ders» = «dərs».", "Можно писать без азербайджанских букв: «ders» = «dərs».", "You can type without Azerbaijani letters: “ders” finds “dərs”."],
    AllLanguages => ["Bütün dillər", "Все языки", "All languages"],
    OpenLesson => ["Dərsi aç", "Открыть урок", "Open the lesson"],
    SaveOffline => ["Evdə oxumaq üçün yüklə", "Скачать, чтобы читать дома", "Download to read at home"],
    SaveOfflineNote => ["Bir fayl: internetsiz, şəkilləri ilə açılır.", "Один файл: откроется без интернета, с картинками.", "One file: it opens without internet, with every picture."],
    Size => ["Ölçüsü", "Размер", "Size"],
    DownloadSize => ["Faylın ölçüsü: {}", "Размер файла: {}", "File size: {}"],
    Subject => ["Fənn", "Предмет", "Subject"],
    Grade => ["Sinif", "Класс", "Grade"],
    LessonLanguage => ["Dərsin dili", "Язык урока", "Lesson language"],
    Pages => ["Səhifələr", "Страницы", "Pages"],
    Summary => ["Qısaca", "Кратко", "Summary"],
    PickLessons => ["Bir neçə dərsi bir faylda yüklə: dərsləri seç, sonra düyməyə bas.", "Несколько уроков одним файлом: отметь уроки и нажми кнопку.", "Several lessons in one file: tick the lessons, then press the button."],
    PickThis => ["Bu dərsi seç", "Отметить этот урок", "Tick this lesson"],
    PackChosen => ["Seçilənləri bir faylda yüklə", "Скачать отмеченные одним файлом", "Download the ticked ones as one file"],
    PackAll => ["Bu {} dərsin hamısını bir faylda yüklə", "Скачать все уроки ({}) одним файлом", "Download all {} lessons as one file"],
    PackTitle => ["Dərs toplusu", "Набор уроков", "Lesson pack"],
    PackConfirm => ["Bu dərslər bir faylda telefonuna yüklənəcək:", "Эти уроки будут скачаны на телефон одним файлом:", "These lessons will be downloaded to your phone as one file:"],
    PackNone => ["Heç bir dərs seçilməyib. Geri qayıt və dərsləri seç.", "Не отмечено ни одного урока. Вернись и отметь уроки.", "No lessons were ticked. Go back and tick some lessons."],
    PackTooMany => ["Bir faylda ən çoxu {} dərs ola bilər.", "В одном файле может быть не больше {} уроков.", "One file can hold at most {} lessons."],
    PackUnknown => ["Bu dərs artıq yoxdur: {}", "Этого урока больше нет: {}", "This lesson is no longer here: {}"],
    Download => ["Yüklə ({})", "Скачать ({})", "Download ({})"],
    Contents => ["Mündəricat", "Содержание", "Contents"],
    Separate => ["Ayrıca yüklənən fayllar", "Файлы, которые скачиваются отдельно", "Files that download separately"],
    SeparateNote => ["Bu faylları yalnız məktəb şəbəkəsində yükləmək olar.", "Эти файлы можно скачать только в школьной сети.", "These files download only on the school network."],
    TooBigNote => ["{}-dan böyük şəkillər fayla qoyulmur; onlar aşağıda ayrıca göstərilir.", "Картинки больше {} в файл не входят; они перечислены ниже.", "Pictures bigger than {} are not put in the file; they are listed below."],
    TooBigPicture => ["Bu şəkil fayl üçün çox böyükdür", "Эта картинка слишком большая для файла", "This picture is too big for the file"],
    BudgetNote => ["Fayl {}-dan böyük olmasın deyə bəzi şəkillər ayrıca göstərilir.", "Чтобы файл был не больше {}, некоторые картинки перечислены отдельно.", "To keep the file under {}, some pictures are listed separately."],
    ScriptsDropped => ["Bu dərsin interaktiv hissələri yalnız məktəbdə işləyir.", "Интерактивные части этого урока работают только в школе.", "This lesson's interactive parts work only at school."],
    OnlineOnly => ["məktəb şəbəkəsi", "школьная сеть", "school network"],
    MediaPlaceholder => ["Video və ya səs: məktəb şəbəkəsində yüklə", "Видео или звук: скачай в школьной сети", "Video or sound: download it on the school network"],
    SavedFrom => ["{} tarixində {} ünvanından yüklənib.", "Скачано {} с {}.", "Saved on {} from {}."],
    OpensOffline => ["Bu fayl internetsiz açılır.", "Этот файл открывается без интернета.", "This file opens without internet."],
    WhoseTurn => ["İndi kimin növbəsidir?", "Чья сейчас очередь?", "Whose turn is it?"],
    AddName => ["Əlavə et", "Добавить", "Add"],
    NameLabel => ["Ad və ya ləqəb", "Имя или прозвище", "First name or nickname"],
    NameStaysHere => ["Ad yalnız bu telefonda saxlanır, heç yerə göndərilmir.", "Имя хранится только в этом телефоне и никуда не отправляется.", "The name stays on this phone only; it is never sent anywhere."],
    MyLessons => ["Mənim dərslərim", "Мои уроки", "My lessons"],
    MyLessonsEmpty => ["Hələ yüklənmiş dərs yoxdur.", "Скачанных уроков пока нет.", "No saved lessons yet."],
    MarkDone => ["Oxudum", "Прочитал(а)", "Mark as done"],
    Done => ["Oxunub ✓", "Прочитано ✓", "Done ✓"],
    Saved => ["yüklənib", "скачан", "saved"],
    NotFoundTitle => ["Tapılmadı", "Не найдено", "Not found"],
    NotFoundText => ["Bu səhifə yoxdur.", "Такой страницы нет.", "There is no such page."],
    BadRequestTitle => ["Səhv sorğu", "Неверный запрос", "Bad request"],
    PosterTitle => ["Dərslərə necə girmək olar", "Как открыть уроки", "How to reach the lessons"],
    PosterLine1 => ["Məktəbin Wi-Fi şəbəkəsinə qoşul və kameranı bu koda tut.", "Подключись к Wi-Fi школы и наведи камеру на этот код.", "Join the school Wi-Fi and point your camera at this code."],
    PosterLine2 => ["Və ya brauzerdə bu ünvanı yaz:", "Или набери в браузере этот адрес:", "Or type this address in the browser:"],
    PosterOther => ["Başqa ünvanlar", "Другие адреса", "Other addresses"],
    PosterNoAddress => ["Bu kompüterin şəbəkə ünvanı tapılmadı: kabel və ya Wi-Fi qoşulubmu?", "Сетевой адрес этого компьютера не найден: подключены ли кабель или Wi-Fi?", "This computer has no network address yet: is the cable or Wi-Fi connected?"],
    Print => ["Çap et", "Печать", "Print"],
    Poster => ["Sinif üçün plakat", "Плакат для класса", "Poster for the classroom"],
}

/// "5 dərs", "3 урока", "1 lesson": the count with the right plural form.
pub fn lesson_count(lang: Lang, n: usize) -> String {
    let key = match lang {
        Lang::Ru => match (n % 10, n % 100) {
            (1, r) if r != 11 => Text::LessonOne,
            (2..=4, r) if !(12..=14).contains(&r) => Text::LessonFew,
            _ => Text::LessonMany,
        },
        _ if n == 1 => Text::LessonOne,
        _ => Text::LessonMany,
    };
    format!("{n} {}", lang.t(key))
}

/// "4-cü sinif", "4 класс", "Grade 4" (0: not graded).
pub fn grade_label(lang: Lang, grade: u8) -> String {
    match (lang, grade) {
        (Lang::Az, 0) => "Sinifsiz".to_owned(),
        (Lang::Ru, 0) => "Без класса".to_owned(),
        (Lang::En, 0) => "Any grade".to_owned(),
        (Lang::Az, g) => format!("{g}-{} sinif", az_ordinal_suffix(g)),
        (Lang::Ru, g) => format!("{g} класс"),
        (Lang::En, g) => format!("Grade {g}"),
    }
}

/// The Azerbaijani ordinal suffix follows the number's last sound (vowel harmony):
/// 1-ci, 2-ci, 3-cü, 4-cü, 5-ci, 6-cı, 7-ci, 8-ci, 9-cu, 10-cu, 11-ci.
fn az_ordinal_suffix(n: u8) -> &'static str {
    match n % 10 {
        3 | 4 => "cü",
        6 => "cı",
        9 | 0 => "cu",
        _ => "ci",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_has_all_three_languages_with_the_same_placeholders() {
        for &key in Text::ALL {
            let row = key.row();
            let holes = row[0].matches("{}").count();
            for (lang, text) in Lang::ALL.iter().zip(row) {
                assert!(!text.trim().is_empty(), "{key:?} has no {} text", lang.code());
                assert_eq!(
                    text.matches("{}").count(),
                    holes,
                    "{key:?} in {} has other placeholders",
                    lang.code()
                );
            }
            // A copy of the English left untranslated is a missing translation.
            if row[2].chars().any(|c| c.is_ascii_alphabetic()) {
                assert_ne!(row[0], row[2], "{key:?} is not translated into Azerbaijani");
                assert_ne!(row[1], row[2], "{key:?} is not translated into Russian");
            }
        }
    }

    #[test]
    fn russian_counts_take_three_plural_forms() {
        let forms: Vec<String> = [1, 2, 5, 11, 21, 22, 25]
            .iter()
            .map(|&n| lesson_count(Lang::Ru, n))
            .collect();
        assert_eq!(
            forms,
            [
                "1 урок",
                "2 урока",
                "5 уроков",
                "11 уроков",
                "21 урок",
                "22 урока",
                "25 уроков"
            ]
        );
        assert_eq!(lesson_count(Lang::Az, 5), "5 dərs");
        assert_eq!(lesson_count(Lang::En, 1), "1 lesson");
    }

    #[test]
    fn placeholders_are_filled_in_order() {
        assert_eq!(
            Lang::En.fill(Text::SavedFrom, &["2026-12-01", "10.0.0.2"]),
            "Saved on 2026-12-01 from 10.0.0.2."
        );
        assert_eq!(Lang::from_tag("ru-RU"), Some(Lang::Ru));
        assert_eq!(Lang::from_tag("az-Latn-AZ"), Some(Lang::Az));
        assert_eq!(Lang::from_tag("tr"), None);
    }

    #[test]
    fn azerbaijani_grades_follow_vowel_harmony() {
        let labels: Vec<String> = (1..=11).map(|g| grade_label(Lang::Az, g)).collect();
        assert_eq!(
            labels,
            [
                "1-ci sinif",
                "2-ci sinif",
                "3-cü sinif",
                "4-cü sinif",
                "5-ci sinif",
                "6-cı sinif",
                "7-ci sinif",
                "8-ci sinif",
                "9-cu sinif",
                "10-cu sinif",
                "11-ci sinif"
            ]
        );
        assert_eq!(grade_label(Lang::Ru, 4), "4 класс");
    }
}
