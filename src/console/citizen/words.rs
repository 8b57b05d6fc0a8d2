//! The citizen page's own words in the portal's five languages, its dates
//! and which language a request gets. The texts were written for the
//! project, not by native speakers (the `ar` and `zgh` (Tifinagh) ones
//! above all, the partial-history and deferred-disclosure notices
//! included): they need review by one before a real portal shows them.

use crate::config::LANGS;

/// The receipt's words: the column, the states the page's script shows,
/// the download link and the check of a receipt file.
#[derive(Debug)]
pub(super) struct Receipt {
    pub(super) heading: &'static str,
    pub(super) checking: &'static str,
    pub(super) verified: &'static str,
    pub(super) not_verified: &'static str,
    pub(super) download: &'static str,
    /// The entry is not yet under a signed checkpoint.
    pub(super) pending: &'static str,
    /// The label of the field that checks a receipt file.
    pub(super) check_file: &'static str,
    /// The witnesses' list under a line, and each one's state.
    pub(super) witnesses: &'static str,
    pub(super) cosigned: &'static str,
    pub(super) cosignature_bad: &'static str,
    pub(super) no_cosignature: &'static str,
    /// The k-of-n policy met, or not: `{k}` and `{n}`.
    pub(super) quorum_met: &'static str,
    pub(super) quorum_not_met: &'static str,
}

/// The page's fixed texts in one language.
#[derive(Debug)]
pub(super) struct Words {
    pub(super) lang: &'static str,
    /// `rtl` for Arabic, `ltr` otherwise.
    pub(super) dir: &'static str,
    /// The language's own name, for the switcher.
    pub(super) name: &'static str,
    pub(super) title: &'static str,
    pub(super) intro: &'static str,
    pub(super) when: &'static str,
    pub(super) who: &'static str,
    pub(super) data: &'static str,
    pub(super) why: &'static str,
    pub(super) basis: &'static str,
    pub(super) outcome: &'static str,
    pub(super) none: &'static str,
    /// ALLOWED, REFUSED, FAILED.
    pub(super) outcomes: [&'static str; 3],
    pub(super) law: &'static str,
    pub(super) consent: &'static str,
    /// The official's reference ("Official").
    pub(super) official: &'static str,
    /// The receipt column and the page's checks of it.
    pub(super) receipt: Receipt,
    /// Some nodes did not answer: `{nodes}` names them.
    pub(super) partial: &'static str,
    /// Under a line whose disclosure was deferred: `{date}` is when it
    /// was first shown.
    pub(super) deferred: &'static str,
    /// unspecified, civil, fiscal, health, education, social, not-personal.
    pub(super) categories: [&'static str; 7],
    months: [&'static str; 12],
    /// The date's pattern: `{d}`, `{m}`, `{y}`, `{t}` (HH:MM).
    date: &'static str,
}

const AR: Words = Words {
    lang: "ar",
    dir: "rtl",
    name: "العربية",
    title: "من اطلع على معطياتي",
    intro: "كل تبادل لمعطياتك بين الإدارات عبر منصة جسر، من الأحدث إلى الأقدم.",
    when: "متى",
    who: "من طلب",
    data: "أي معطيات",
    why: "لماذا",
    basis: "الأساس",
    outcome: "النتيجة",
    none: "لا يوجد أي تبادل لمعطياتك.",
    outcomes: ["مقبول", "مرفوض", "فشل"],
    law: "القانون",
    consent: "موافقتك",
    official: "الموظف",
    receipt: Receipt {
        heading: "الإيصال",
        checking: "جارٍ التحقق…",
        verified: "تم التحقق: هذا التبادل مسجل في السجل الموقع",
        not_verified: "لم يتم التحقق",
        download: "تنزيل الإيصال",
        pending: "الإيصال غير جاهز بعد؛ أعد تحميل الصفحة بعد لحظة",
        check_file: "التحقق من ملف إيصال",
        witnesses: "الشهود",
        cosigned: "التوقيع المشترك صحيح",
        cosignature_bad: "التوقيع المشترك غير صحيح",
        no_cosignature: "بدون توقيع مشترك",
        quorum_met: "مشهود عليه: وقّع {k} على الأقل من {n} شهود",
        quorum_not_met: "غير مشهود عليه: وقّع أقل من {k} من {n} شهود",
    },
    partial:
        "قد يكون هذا السجل غير مكتمل: بعض خوادم المنصة لم تستجب ({nodes}). أعد تحميل الصفحة لاحقًا.",
    deferred: "معروض ابتداءً من {date}: كان الاطلاع عليه مؤجلاً",
    categories: [
        "غير محددة",
        "الحالة المدنية",
        "الضرائب",
        "الصحة",
        "التعليم",
        "الحماية الاجتماعية",
        "غير شخصية",
    ],
    months: [
        "يناير",
        "فبراير",
        "مارس",
        "أبريل",
        "ماي",
        "يونيو",
        "يوليوز",
        "غشت",
        "شتنبر",
        "أكتوبر",
        "نونبر",
        "دجنبر",
    ],
    date: "{d} {m} {y}، {t}",
};

const ZGH: Words = Words {
    lang: "zgh",
    dir: "ltr",
    name: "ⵜⴰⵎⴰⵣⵉⵖⵜ",
    title: "ⵎⴰⵏⵡ ⵉⵥⵕⴰⵏ ⵉⵙⴼⴽⴰ ⵉⵏⵓ",
    intro: "ⴽⵓ ⴰⵎⵙⵏⴼⵍ ⵏ ⵉⵙⴼⴽⴰ ⵏⵏⴽ ⴳⵔ ⵜⵙⴱⴷⴰⴷⵉⵏ ⵙ ⵓⵎⵙⵉⵡⵍ ⵊⵉⵙⵔ.",
    when: "ⵎⵉⴽ",
    who: "ⵎⴰⵏⵡ ⵉⵙⵓⵜⵍⵏ",
    data: "ⵎⴰⵏ ⵉⵙⴼⴽⴰ",
    why: "ⵎⴰⵅ",
    basis: "ⴰⵙⵍⵙⵓ",
    outcome: "ⵜⴰⴳⴳⵓⵜ",
    none: "ⵓⵔ ⵉⵍⵍⵉ ⴽⵔⴰ ⵏ ⵓⵎⵙⵏⴼⵍ.",
    outcomes: ["ⵉⵜⵜⵓⵇⴱⵍ", "ⵉⵜⵜⵓⴳⴷⵍ", "ⵓⵔ ⵉⴷⴷⵉ"],
    law: "ⴰⵙⵍⴳⵏ",
    consent: "ⴰⵎⵙⴰⵡⴰⵍ ⵏⵏⴽ",
    official: "ⴰⵎⵙⵡⵓⵔⵉ",
    receipt: Receipt {
        heading: "ⴰⵡⵚⵍ",
        checking: "ⴰⵙⴼⵇⴷ…",
        verified: "ⵉⵜⵜⵓⵙⴼⵇⴷ: ⴰⵎⵙⵏⴼⵍ ⴰⴷ ⵉⵍⵍⴰ ⴳ ⵓⵏⵎⵎⴰⵍ ⵉⵜⵜⵓⵙⵎⴰⵍⵏ",
        not_verified: "ⵓⵔ ⵉⵜⵜⵓⵙⴼⵇⴷ",
        download: "ⵙⴰⴳⵎ ⴰⵡⵚⵍ",
        pending: "ⴰⵡⵚⵍ ⵓⵔ ⵉⵀⵢⵢⴰ ⴰⵔ ⴷⵖⵉ; ⴰⵍⵙ ⴰⵙⴰⵍⴰⵢ ⵏ ⵜⴰⵙⵏⴰ",
        check_file: "ⵙⴼⵇⴷ ⴰⴼⴰⵢⵍⵓ ⵏ ⵓⵡⵚⵍ",
        witnesses: "ⵉⵏⴰⴳⵉⵜⵏ",
        cosigned: "ⴰⵙⵎⴰⵍ ⵉⵜⵜⵓⵙⴼⵇⴷ",
        cosignature_bad: "ⴰⵙⵎⴰⵍ ⵓⵔ ⵉⵜⵜⵓⵙⴼⵇⴷ",
        no_cosignature: "ⵓⵍⴰ ⴰⵙⵎⴰⵍ",
        quorum_met: "ⵉⵜⵜⵓⵙⵏⴰⴳⵉ: {k} ⵙⴳ {n} ⵉⵏⴰⴳⵉⵜⵏ ⵙⵎⴰⵍⵏ",
        quorum_not_met: "ⵓⵔ ⵉⵜⵜⵓⵙⵏⴰⴳⵉ: ⴷⵔⵓⵙ ⵏ {k} ⵙⴳ {n} ⵉⵏⴰⴳⵉⵜⵏ ⴰⵢ ⵙⵎⴰⵍⵏ",
    },
    partial: "ⴰⵎⵣⵔⵓⵢ ⴰⴷ ⵉⵖⵢ ⴰⴷ ⵓⵔ ⵉⴽⵎⵉⵍ: ⴽⵔⴰ ⵏ ⵉⵎⵙⵙⵓⴷⴰⵙ ⵏ ⵓⵎⵙⵉⵡⵍ ⵓⵔ ⴷ ⵔⴰⵔⵏ ({nodes}). ⴰⵍⵙ ⴰⵙⴰⵍⴰⵢ ⵏ ⵜⴰⵙⵏⴰ ⴷⴼⴼⵉⵔ.",
    deferred: "ⵉⵜⵜⵓⵙⴽⴰⵏ ⵙⴳ {date}: ⴰⵙⴽⴰⵏ ⵏⵏⵙ ⵉⵜⵜⵓⵙⵎⵓⵜⵜⵉ",
    categories: [
        "ⵓⵔ ⵉⵜⵜⵓⵙⵎⵍ",
        "ⴰⴷⴷⴰⴷ ⴰⵖⵔⵓⵏ",
        "ⵜⵉⵖⵔⴰⵎⵉⵏ",
        "ⵜⴰⴷⵓⵙⵉ",
        "ⴰⵙⴳⵎⵉ",
        "ⴰⵙⵜⵜⴰ ⴰⵏⴰⵎⵓⵏ",
        "ⵓⵔ ⵉⴳⵉ ⵓⵏⵏⵉⵎⴰⵏ",
    ],
    months: [
        "ⵉⵏⵏⴰⵢⵔ",
        "ⴱⵕⴰⵢⵕ",
        "ⵎⴰⵕⵚ",
        "ⵉⴱⵔⵉⵔ",
        "ⵎⴰⵢⵢⵓ",
        "ⵢⵓⵏⵢⵓ",
        "ⵢⵓⵍⵢⵓⵣ",
        "ⵖⵓⵛⵜ",
        "ⵛⵓⵜⴰⵏⴱⵉⵔ",
        "ⴽⵜⵓⴱⵔ",
        "ⵏⵓⵡⴰⵏⴱⵉⵔ",
        "ⴷⵓⵊⵏⴱⵉⵔ",
    ],
    date: "{d} {m} {y}, {t}",
};

const FR: Words = Words {
    lang: "fr", dir: "ltr", name: "Français",
    title: "Qui a consulté mes données", intro: "Chaque échange de vos données entre administrations par la plateforme Jisr, du plus récent au plus ancien.",
    when: "Quand", who: "Qui a demandé", data: "Quelles données", why: "Pourquoi", basis: "Fondement", outcome: "Résultat",
    none: "Aucun échange de vos données.", outcomes: ["Accordé", "Refusé", "Échoué"],
    law: "Loi", consent: "votre consentement",
    official: "Agent",
    receipt: Receipt {
        heading: "Reçu", checking: "Vérification…",
        verified: "Vérifié : cet échange est dans le journal signé", not_verified: "NON vérifié",
        download: "Télécharger le reçu", pending: "Reçu pas encore prêt ; rechargez la page dans un instant",
        check_file: "Vérifier un fichier de reçu",
        witnesses: "Témoins", cosigned: "cosignature vérifiée",
        cosignature_bad: "cosignature NON vérifiée", no_cosignature: "pas de cosignature",
        quorum_met: "Témoigné : au moins {k} témoins sur {n} ont cosigné",
        quorum_not_met: "Non témoigné : moins de {k} témoins sur {n} ont cosigné",
    },
    partial: "Cet historique est peut-être incomplet : des serveurs de la plateforme n'ont pas répondu ({nodes}). Rechargez la page plus tard.",
    deferred: "Affiché à partir du {date} : sa communication était différée",
    categories: ["non précisée", "état civil", "fiscalité", "santé", "éducation", "protection sociale", "non personnelles"],
    months: ["janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre", "octobre", "novembre", "décembre"],
    date: "{d} {m} {y} à {t}",
};

const EN: Words = Words {
    lang: "en", dir: "ltr", name: "English",
    title: "Who looked at my data", intro: "Every exchange of your data between administrations through the Jisr platform, newest first.",
    when: "When", who: "Who asked", data: "Which data", why: "Why", basis: "Basis", outcome: "Outcome",
    none: "No exchange of your data.", outcomes: ["Allowed", "Refused", "Failed"],
    law: "Law", consent: "your consent",
    official: "Official",
    receipt: Receipt {
        heading: "Receipt", checking: "Checking…",
        verified: "Verified: this exchange is in the signed log", not_verified: "NOT verified",
        download: "Download the receipt", pending: "Receipt not ready yet; reload the page in a moment",
        check_file: "Check a receipt file",
        witnesses: "Witnesses", cosigned: "cosignature verified",
        cosignature_bad: "cosignature does NOT verify", no_cosignature: "no cosignature",
        quorum_met: "Witnessed: at least {k} of {n} witnesses cosigned",
        quorum_not_met: "Not witnessed: fewer than {k} of {n} witnesses cosigned",
    },
    partial: "This history may be incomplete: some of the platform's servers did not answer ({nodes}). Reload the page later.",
    deferred: "Shown from {date}: its disclosure was deferred",
    categories: ["unspecified", "civil status", "tax", "health", "education", "social protection", "not personal"],
    months: ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"],
    date: "{d} {m} {y}, {t}",
};

const ES: Words = Words {
    lang: "es", dir: "ltr", name: "Español",
    title: "Quién consultó mis datos", intro: "Cada intercambio de sus datos entre administraciones a través de la plataforma Jisr, del más reciente al más antiguo.",
    when: "Cuándo", who: "Quién lo pidió", data: "Qué datos", why: "Por qué", basis: "Base", outcome: "Resultado",
    none: "Ningún intercambio de sus datos.", outcomes: ["Permitido", "Denegado", "Fallido"],
    law: "Ley", consent: "su consentimiento",
    official: "Funcionario",
    receipt: Receipt {
        heading: "Recibo", checking: "Comprobando…",
        verified: "Verificado: este intercambio está en el registro firmado", not_verified: "NO verificado",
        download: "Descargar el recibo", pending: "Recibo aún no disponible; recargue la página en un momento",
        check_file: "Comprobar un archivo de recibo",
        witnesses: "Testigos", cosigned: "firma conjunta verificada",
        cosignature_bad: "la firma conjunta NO se verifica", no_cosignature: "sin firma conjunta",
        quorum_met: "Atestiguado: al menos {k} de {n} testigos firmaron",
        quorum_not_met: "No atestiguado: menos de {k} de {n} testigos firmaron",
    },
    partial: "Este historial puede estar incompleto: algunos servidores de la plataforma no respondieron ({nodes}). Vuelva a cargar la página más tarde.",
    deferred: "Mostrado desde el {date}: su comunicación estaba aplazada",
    categories: ["sin precisar", "estado civil", "fiscales", "salud", "educación", "protección social", "no personales"],
    months: ["enero", "febrero", "marzo", "abril", "mayo", "junio", "julio", "agosto", "septiembre", "octubre", "noviembre", "diciembre"],
    date: "{d} de {m} de {y}, {t}",
};

/// Every language's words, in [`LANGS`] order.
pub(super) const ALL: [&Words; 5] = [&AR, &ZGH, &FR, &EN, &ES];

/// The words of `lang`, if it is one of the portal's.
pub(super) fn of(lang: &str) -> Option<&'static Words> {
    ALL.iter().copied().find(|w| w.lang == lang)
}

/// The language for a request: `chosen` (the switcher) if it is one of
/// [`LANGS`], else the best of `Accept-Language` by its q-values, else Arabic.
pub(super) fn choose(chosen: Option<&str>, accept_language: &str) -> &'static Words {
    if let Some(w) = chosen.and_then(of) {
        return w;
    }
    let mut offers: Vec<(f32, &str)> = accept_language
        .split(',')
        .filter_map(|part| {
            let mut pieces = part.split(';');
            let tag = pieces.next()?.trim();
            let q = pieces
                .find_map(|p| p.trim().strip_prefix("q="))
                .and_then(|q| q.parse().ok())
                .unwrap_or(1.0);
            let primary = tag.split('-').next()?;
            LANGS
                .iter()
                .find(|l| l.eq_ignore_ascii_case(primary))
                .map(|l| (q, *l))
        })
        .collect();
    // Stable: equal q-values keep the browser's order.
    offers.sort_by(|a, b| b.0.total_cmp(&a.0));
    offers.first().and_then(|(_, l)| of(l)).unwrap_or(&AR)
}

impl Words {
    /// A record's time (UTC), as this language writes dates.
    pub(super) fn date(&self, micros: i64) -> String {
        let Ok(t) = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1000)
        else {
            return micros.to_string();
        };
        let month = self.months[usize::from(u8::from(t.month())) - 1];
        self.date
            .replace("{d}", &t.day().to_string())
            .replace("{m}", month)
            .replace("{y}", &t.year().to_string())
            .replace("{t}", &format!("{:02}:{:02} UTC", t.hour(), t.minute()))
    }

    /// The category's name in this language (the config's name if unknown).
    pub(super) fn category<'a>(&self, name: &'a str) -> &'a str
    where
        'static: 'a,
    {
        let names = [
            "unspecified",
            "civil",
            "fiscal",
            "health",
            "education",
            "social",
            "not-personal",
        ];
        names
            .iter()
            .position(|n| *n == name)
            .map_or(name, |i| self.categories[i])
    }
}
