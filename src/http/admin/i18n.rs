//! The console's words in Azerbaijani (first: teachers and technicians read it first),
//! Russian and English. Every string exists in all three; the compiler checks it.

use axum::http::request::Parts;

use super::auth::{LANG_COOKIE, cookie};

pub use crate::ui::{Lang, Words};

/// How the console picks its language (the phone pages follow `Accept-Language` instead).
impl Lang {
    /// `?lang=` first, then the language cookie; else Azerbaijani, whatever the browser's own
    /// language (a centre's PC often has an English or Russian browser).
    pub fn of(parts: &Parts) -> Lang {
        Lang::asked(parts)
            .or_else(|| cookie(&parts.headers, LANG_COOKIE).and_then(Lang::from_tag))
            .unwrap_or(Lang::Az)
    }

    /// Whether `?lang=` chose this language on this request (to remember it in a cookie).
    pub fn asked(parts: &Parts) -> Option<Lang> {
        parts
            .uri
            .query()
            .unwrap_or_default()
            .split('&')
            .filter_map(|p| p.strip_prefix("lang="))
            .find_map(Lang::from_tag)
    }
}

macro_rules! strings {
    ($($key:ident => $az:literal, $ru:literal, $en:literal;)*) => {
        /// A string of the console.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        #[allow(non_camel_case_types)]
        pub enum S { $($key),* }

        impl Words for S {
            fn word(self, lang: Lang) -> &'static str {
                match self {
                    $(S::$key => match lang { Lang::Az => $az, Lang::Ru => $ru, Lang::En => $en },)*
                }
            }
        }

        #[cfg(test)]
        const EVERY: &[S] = &[$(S::$key),*];
    };
}

strings! {
    console => "Konsol", "Консоль", "Console";
    login_title => "Konsola giriş", "Вход в консоль", "Log in to the console";
    login_help => "Müəllimlər və texniklər üçün. Şagirdlər üçün dərslər əsas səhifədədir.", "Для учителей и техников. Уроки для учеников — на главной странице.", "For teachers and technicians. Students find the lessons on the home page.";
    account_name => "Hesab adı", "Имя учётной записи", "Account name";
    password => "Şifrə", "Пароль", "Password";
    log_in => "Daxil ol", "Войти", "Log in";
    log_out => "Çıxış", "Выйти", "Log out";
    wrong_password => "Hesab adı və ya şifrə yanlışdır.", "Неверное имя или пароль.", "Wrong account name or password.";
    throttled => "Çox sayda uğursuz cəhd. {n} saniyə sonra yenidən cəhd edin.", "Слишком много неудачных попыток. Повторите через {n} с.", "Too many failed attempts. Try again in {n} seconds.";
    lessons => "Dərslər", "Уроки", "Lessons";
    sticks => "USB yaddaş", "USB-накопители", "USB sticks";
    system => "Sistem", "Система", "System";
    accounts => "Hesablar", "Учётные записи", "Accounts";
    audit => "Jurnal", "Журнал", "Audit log";
    upload_title => "Dərs yükləyin", "Загрузить урок", "Upload a lesson";
    upload_zip_help => "Dərs qovluğunun zip faylı (içində lesson.toml):", "Zip-архив папки урока (с файлом lesson.toml):", "A zip of the lesson folder (with its lesson.toml):";
    upload_files_help => "və ya dərsin fayllarını seçib formu doldurun:", "или выберите файлы урока и заполните форму:", "or choose the lesson's files and fill in the form:";
    zip_file => "Zip fayl", "Zip-файл", "Zip file";
    files => "Fayllar", "Файлы", "Files";
    f_id => "İdentifikator (boş qala bilər)", "Идентификатор (можно не заполнять)", "Id (may be left empty)";
    f_title => "Ad", "Название", "Title";
    f_language => "Dil", "Язык", "Language";
    f_grade => "Sinif (0 — sinifsiz)", "Класс (0 — без класса)", "Grade (0 = not graded)";
    f_subject => "Fənn", "Предмет", "Subject";
    f_summary => "Qısa təsvir", "Краткое описание", "Summary";
    upload => "Yüklə", "Загрузить", "Upload";
    uploaded => "Dərs yükləndi:", "Урок загружен:", "Lesson uploaded:";
    upload_refused => "Yükləmə qəbul edilmədi", "Загрузка отклонена", "Upload refused";
    origin => "Mənbə", "Источник", "Origin";
    state => "Vəziyyət", "Состояние", "State";
    origin_local => "yerli", "локальный", "local";
    origin_sample => "nümunə", "пример", "sample";
    origin_signed => "nazirlik (imzalı)", "министерство (подписан)", "ministry (signed)";
    visible => "görünür", "виден", "visible";
    hidden => "gizli", "скрыт", "hidden";
    hide => "Gizlət", "Скрыть", "Hide";
    show => "Göstər", "Показать", "Show";
    delete => "Sil", "Удалить", "Delete";
    no_lessons => "Dərs yoxdur.", "Уроков нет.", "No lessons.";
    msg_hidden => "Dərs şagirdlərdən gizlədildi.", "Урок скрыт от учеников.", "The lesson is hidden from students.";
    msg_shown => "Dərs yenidən görünür.", "Урок снова виден.", "The lesson is visible again.";
    msg_deleted => "Dərs silindi.", "Урок удалён.", "The lesson was deleted.";
    no_sticks => "Dərsli USB yaddaş tapılmadı. Axtarılan yerlər:", "USB-накопители с уроками не найдены. Где искали:", "No USB stick with lessons was found. Looked in:";
    reload => "Yenilə", "Обновить", "Reload";
    publisher => "Naşir", "Издатель", "Publisher";
    fingerprint => "Barmaq izi", "Отпечаток", "Fingerprint";
    trusted => "etibarlı", "доверенный", "trusted";
    untrusted => "etibarsız", "недоверенный", "not trusted";
    sequence => "Buraxılış", "Выпуск", "Sequence";
    verify => "Yoxla", "Проверить", "Verify";
    import => "İdxal et", "Импортировать", "Import";
    export => "Bu qurğuya yaz", "Записать на этот накопитель", "Export to this stick";
    export_title => "Dərsləri USB yaddaşa yazın", "Записать уроки на USB-накопитель", "Write the lessons to a USB stick";
    no_targets => "Qoşulmuş USB yaddaş yoxdur.", "Нет подключённых USB-накопителей.", "No USB stick is plugged in.";
    add_key_line => "Bu açara etibar etmək üçün barmaq izini naşirlə yoxlayın və konfiqurasiya faylına əlavə edin:", "Чтобы доверять ключу, сверьте отпечаток с издателем и добавьте в файл настроек:", "To trust this key, confirm the fingerprint with the publisher and add to the config file:";
    lesson_folders => "Dərs qovluqları (imzasız, yerli dərs kimi idxal olunur)", "Папки уроков (без подписи, импортируются как локальные)", "Lesson folders (unsigned, imported as local lessons)";
    local_lessons => "İmzasız yerli dərslər", "Неподписанные локальные уроки", "Unsigned local lessons";
    job => "İş", "Задача", "Job";
    running => "Davam edir…", "Выполняется…", "Running…";
    done => "Hazırdır", "Готово", "Done";
    failed => "Alınmadı", "Не удалось", "Failed";
    started_by => "Başladan", "Запустил", "Started by";
    recent_jobs => "Son işlər", "Последние задачи", "Recent jobs";
    health => "Vəziyyət", "Состояние", "Health";
    all_well => "Hər şey qaydasındadır.", "Всё в порядке.", "All is well.";
    disk_free => "Diskdə boş yer", "Свободно на диске", "Disk free";
    store_size => "Anbarın ölçüsü", "Размер хранилища", "Store size";
    schema => "Sxem versiyası", "Версия схемы", "Schema version";
    centre => "Mərkəz", "Центр", "Centre";
    version => "Proqram versiyası", "Версия программы", "Software version";
    sync_title => "Sinxronizasiya", "Синхронизация", "Sync";
    sync_now => "İndi sinxronlaşdır", "Синхронизировать сейчас", "Sync now";
    no_upstreams => "Konfiqurasiya faylında upstreams göstərilməyib.", "В файле настроек не указаны upstreams.", "No upstreams are set in the config file.";
    last_result => "Son nəticə", "Последний результат", "Last result";
    never => "hələ olmayıb", "ещё не было", "never";
    ok => "uğurlu", "успешно", "ok";
    keys_title => "Etibarlı açarlar", "Доверенные ключи", "Trusted keys";
    no_keys => "Etibarlı açar yoxdur: imzalı paketlər qəbul edilməyəcək.", "Доверенных ключей нет: подписанные пакеты не будут приняты.", "No trusted keys: signed packages will be refused.";
    installed => "Quraşdırılmış naşirlər", "Установленные издатели", "Installed publishers";
    verify_store => "Anbarı yoxla", "Проверить хранилище", "Verify the store";
    add_account => "Hesab əlavə et", "Добавить учётную запись", "Add an account";
    role => "Rol", "Роль", "Role";
    teacher => "müəllim", "учитель", "teacher";
    technician => "texnik", "техник", "technician";
    password_again => "Şifrə (təkrar)", "Пароль (ещё раз)", "Password (again)";
    passwords_differ => "Şifrələr eyni deyil.", "Пароли не совпадают.", "The passwords differ.";
    new_password => "Yeni şifrə", "Новый пароль", "New password";
    set_password => "Şifrəni dəyiş", "Сменить пароль", "Set the password";
    created => "Yaradılıb", "Создана", "Created";
    msg_account_added => "Hesab əlavə edildi.", "Учётная запись добавлена.", "The account was added.";
    msg_account_removed => "Hesab silindi.", "Учётная запись удалена.", "The account was removed.";
    msg_password_set => "Şifrə dəyişdirildi; həmin hesabın açıq sessiyaları bağlandı.", "Пароль изменён; открытые сеансы этой учётной записи закрыты.", "The password was set; that account's open sessions were ended.";
    cannot_remove_self => "Öz hesabınızı silə bilməzsiniz.", "Нельзя удалить свою учётную запись.", "You cannot remove your own account.";
    usage => "İstifadə", "Использование", "Usage";
    usage_note => "Yalnız gün üzrə saylar saxlanılır: dərsi kimin açdığı bilinmir və yazılmır.", "Хранятся только счётчики по дням: кто открывал урок, неизвестно и не записывается.", "Only counts per day are kept: who opened a lesson is neither known nor written down.";
    views_per_day => "Baxışlar, gün üzrə (son 30 gün)", "Просмотры по дням (последние 30 дней)", "Views per day (last 30 days)";
    saves_per_day => "Oflayn saxlamalar, gün üzrə (son 30 gün)", "Офлайн-сохранения по дням (последние 30 дней)", "Offline saves per day (last 30 days)";
    most_viewed => "Ən çox baxılan dərslər (son 30 gün)", "Самые просматриваемые уроки (30 дней)", "Most viewed lessons (last 30 days)";
    most_saved => "Ən çox oflayn saxlanılan dərslər (son 30 gün)", "Чаще всего сохраняемые офлайн уроки (30 дней)", "Most saved lessons (last 30 days)";
    lesson => "Dərs", "Урок", "Lesson";
    views_30 => "Baxış, 30 gün", "Просмотры, 30 дней", "Views, 30 days";
    saves_30 => "Oflayn saxlama, 30 gün", "Сохранения, 30 дней", "Offline saves, 30 days";
    views_90 => "Baxış, 90 gün", "Просмотры, 90 дней", "Views, 90 days";
    saves_90 => "Oflayn saxlama, 90 gün", "Сохранения, 90 дней", "Offline saves, 90 days";
    no_usage => "Son 90 gündə heç bir dərs açılmayıb.", "За последние 90 дней ни один урок не открывали.", "No lesson was opened in the last 90 days.";
    unused_lessons => "Son 90 gündə açılmayan dərslər", "Уроки, которые не открывали 90 дней", "Lessons not opened in the last 90 days";
    deleted_lesson => "silinib", "удалён", "deleted";
    report_title => "Nazirlik üçün hesabat", "Отчёт для министерства", "Field report for the ministry";
    report_help => "İmzalı hesabat (dərslər, vəziyyət, disk, gün üzrə istifadə saylarıdır; şəxsi məlumat yoxdur) seçilmiş USB yaddaşın DARS-REPORTS qovluğuna yazılır, dars report --out kimi.", "Подписанный отчёт (уроки, состояние, диск, счётчики использования по дням; без личных данных) записывается в папку DARS-REPORTS выбранного USB-накопителя, как dars report --out.", "A signed report (lessons, health, disk, usage counts per day; no personal data) is written into the DARS-REPORTS folder of the chosen USB stick, as dars report --out does.";
    stick => "USB yaddaş", "USB-накопитель", "USB stick";
    write_report => "Hesabatı yaz", "Записать отчёт", "Write the report";
    report_written => "Hesabat yazıldı", "Отчёт записан", "Report written";
    signature => "İmza", "Подпись", "Signature";
    report_not_written => "Hesabat yazılmadı", "Отчёт не записан", "The report was not written";
    stick_full => "USB yaddaşda boş yer yoxdur: faylları silin və ya başqa yaddaş qoşun.", "На USB-накопителе нет места: удалите файлы или подключите другой.", "The USB stick is full: delete some files or plug in another stick.";
    stick_read_only => "USB yaddaşa yazmaq olmur (yalnız oxunur və ya yazmadan qorunur).", "На USB-накопитель нельзя записать (только чтение или защита от записи).", "The USB stick cannot be written to (it is read-only or write-protected).";
    stick_gone => "Bu USB yaddaş artıq qoşulmayıb; səhifəni yeniləyin.", "Этот USB-накопитель больше не подключён; обновите страницу.", "That USB stick is not plugged in any more; reload the page.";
    time => "Vaxt", "Время", "Time";
    account => "Hesab", "Учётная запись", "Account";
    action => "Əməliyyat", "Действие", "Action";
    details => "Təfərrüat", "Подробности", "Details";
    forbidden => "Bu əməliyyat üçün icazəniz yoxdur.", "У вас нет прав на это действие.", "You may not do this.";
    not_found => "Tapılmadı", "Не найдено", "Not found";
    error => "Xəta", "Ошибка", "Error";
    back => "Geri", "Назад", "Back";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_string_is_in_three_languages() {
        for s in EVERY {
            let texts: Vec<&str> = Lang::ALL.iter().map(|l| l.t(*s)).collect();
            assert!(texts.iter().all(|t| !t.trim().is_empty()), "{s:?}");
            assert!(texts[0] != texts[1], "{s:?} has no Russian");
        }
    }
}
