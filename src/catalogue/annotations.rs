//! The `jisr.*` options of a contract, and the check that every method
//! says what the gateway needs to know: the category of data it releases,
//! and which request field names the citizen — or, explicitly, why none
//! does. A forgotten annotation is an error, never read as "no personal
//! data" or "about no citizen".

use super::{Category, MethodRoute};
use crate::config::{ConfigError, Location};
use prost_reflect::{
    DescriptorPool, ExtensionDescriptor, MethodDescriptor, ServiceDescriptor, Value,
};
use std::path::PathBuf;

/// The name contracts import the annotations by.
pub(super) const IMPORT: &str = "jisr/annotations.proto";

/// The `jisr.*` options a contract may carry, looked up once per pool.
pub(super) struct Annotations {
    pub(super) subject: Option<ExtensionDescriptor>,
    category: Option<ExtensionDescriptor>,
    default_category: Option<ExtensionDescriptor>,
    no_subject: Option<ExtensionDescriptor>,
}

impl Annotations {
    pub(super) fn of(pool: &DescriptorPool) -> Self {
        Self {
            subject: pool.get_extension_by_name("jisr.subject"),
            category: pool.get_extension_by_name("jisr.category"),
            default_category: pool.get_extension_by_name("jisr.default_category"),
            no_subject: pool.get_extension_by_name("jisr.no_subject"),
        }
    }

    /// The service's default category, which its methods' own options override.
    pub(super) fn service_category(&self, service: &ServiceDescriptor) -> Option<i32> {
        self.default_category
            .as_ref()
            .and_then(|ext| enum_option(&service.options(), ext))
    }

    pub(super) fn method_category(
        &self,
        method: &MethodDescriptor,
        service_category: Option<i32>,
    ) -> Category {
        self.category
            .as_ref()
            .and_then(|ext| enum_option(&method.options(), ext))
            .or(service_category)
            .map_or(Category::Unspecified, Category::from_number)
    }

    /// The reason a method gives for naming no citizen, if it gives one.
    pub(super) fn no_subject(&self, method: &MethodDescriptor) -> Option<String> {
        let ext = self.no_subject.as_ref()?;
        let options = method.options();
        if !options.has_extension(ext) {
            return None;
        }
        match options.get_extension(ext).as_ref() {
            Value::String(why) => Some(why.trim().to_owned()),
            _ => None,
        }
    }
}

fn enum_option(options: &prost_reflect::DynamicMessage, ext: &ExtensionDescriptor) -> Option<i32> {
    if !options.has_extension(ext) {
        return None;
    }
    match options.get_extension(ext).as_ref() {
        Value::EnumNumber(n) => Some(*n),
        _ => None,
    }
}

/// Where a contract's service or method is, for its errors.
pub(super) struct Places<'a> {
    /// The catalogue's include directories, to find the file on disk.
    pub(super) include: &'a [PathBuf],
    /// Where to point when the contract's own text cannot be located.
    pub(super) fallback: Option<Location>,
}

impl Places<'_> {
    /// The line and column of the element at `path` (a source-info path)
    /// in the contract `file`, else the fallback.
    fn of(&self, file: &prost_reflect::FileDescriptor, path: &[i32]) -> Option<Location> {
        let on_disk = super::load::find_on_disk(file.name(), self.include);
        let span = file
            .file_descriptor_proto()
            .source_code_info
            .as_ref()
            .and_then(|info| info.location.iter().find(|l| l.path == path))
            .map(|l| l.span.clone());
        match (on_disk, span.as_deref()) {
            (Some(file), Some([line, column, ..])) => Some(Location {
                file,
                line: usize::try_from(*line).unwrap_or(0) + 1,
                column: usize::try_from(*column).unwrap_or(0) + 1,
            }),
            _ => self.fallback.clone(),
        }
    }
}

/// The errors of a service whose methods do not all say what they release
/// and whom they are about; `routes` are its methods as loaded.
pub(super) fn check_service(
    service: &ServiceDescriptor,
    routes: &[(MethodDescriptor, MethodRoute)],
    places: &Places<'_>,
) -> Vec<ConfigError> {
    let file = service.parent_file();
    let imports = file.dependencies().any(|d| d.name() == IMPORT);
    let import_hint = if imports {
        String::new()
    } else {
        format!("add `import \"{IMPORT}\";` after the `package` line, then ")
    };
    let mut errors = Vec::new();
    let uncategorised: Vec<&str> = routes
        .iter()
        .filter(|(_, r)| r.category == Category::Unspecified)
        .map(|(_, r)| r.method.as_str())
        .collect();
    if !uncategorised.is_empty() {
        errors.push(ConfigError {
            at: places.of(&file, service.path()),
            message: format!(
                "contract `{}`: service `{}` declares no data category for {}",
                file.name(),
                service.full_name(),
                uncategorised.iter().map(|m| format!("`{m}`")).collect::<Vec<_>>().join(", ")
            ),
            fix: format!("{import_hint}add `option (jisr.default_category) = CIVIL;` (or FISCAL, HEALTH, EDUCATION, SOCIAL) in the service, or `option (jisr.category) = …;` in each method; for data about no one, say `NOT_PERSONAL`"),
        });
    }
    for (method, route) in routes {
        if let Some(error) = check_subject(method, route, &import_hint) {
            errors.push(ConfigError {
                at: places.of(&file, method.path()),
                ..error
            });
        }
    }
    errors
}

/// A method must name its citizen or say why it names none, not both.
fn check_subject(
    method: &MethodDescriptor,
    route: &MethodRoute,
    import_hint: &str,
) -> Option<ConfigError> {
    let file = method.parent_file();
    let name = route.qualified();
    let (message, fix) = match (&route.subject_field, &route.no_subject) {
        (Some(_), None) => return None,
        (None, Some(why)) if !why.is_empty() => return None,
        (None, None) => (
            format!("the request `{}` of `{name}` has no field marked (jisr.subject), and the method does not say why", route.request_type),
            format!("{import_hint}mark the string field that holds the citizen id with `[(jisr.subject) = true]`; if the method is about no citizen, say why in it: `rpc {}(…) returns (…) {{ option (jisr.no_subject) = \"<why>\"; }}`", route.method),
        ),
        (None, Some(_)) => (
            format!("`{name}` has an empty (jisr.no_subject)"),
            "say why the method is about no citizen, e.g. `option (jisr.no_subject) = \"lists the office codes\";`".to_owned(),
        ),
        (Some(field), Some(_)) => (
            format!("`{name}` says (jisr.no_subject) but its request `{}` marks `{field}` as the subject", route.request_type),
            "keep one: remove `(jisr.no_subject)` if the method is about the citizen in that field, else remove the field's `(jisr.subject)`".to_owned(),
        ),
    };
    Some(ConfigError {
        at: None,
        message: format!("contract `{}`: {message}", file.name()),
        fix,
    })
}
