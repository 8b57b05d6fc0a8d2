//! Compiling contracts into a [`Catalogue`].

use super::annotations::{self, Annotations, Places};
use super::subject::find_subject;
use super::{wire, Catalogue, Category, MethodRoute, Streaming};
use crate::config::{Config, ConfigError, ConfigErrors, Location};
use crate::identity::AgencyId;
use prost_reflect::{DescriptorPool, ExtensionDescriptor, MethodDescriptor, ServiceDescriptor};
use protox::file::{
    ChainFileResolver, File, FileResolver, GoogleFileResolver, IncludeFileResolver,
};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The annotations contract, embedded so agency contracts can import
/// `jisr/annotations.proto` without shipping it.
pub const ANNOTATIONS_PROTO: &str = include_str!("../../proto/jisr/annotations.proto");

struct Embedded;

impl FileResolver for Embedded {
    fn open_file(&self, name: &str) -> Result<File, protox::Error> {
        if name == annotations::IMPORT {
            File::from_source(name, ANNOTATIONS_PROTO)
        } else {
            Err(protox::Error::file_not_found(name))
        }
    }
}

impl Catalogue {
    /// Compiles the contracts named by `config` and builds the route table.
    /// Every problem is reported with the place in the config or contract.
    pub fn load(config: &Config) -> Result<Self, ConfigErrors> {
        let mut errors = ConfigErrors(Vec::new());
        let mut resolver = ChainFileResolver::new();
        resolver.add(Embedded);
        for dir in &config.catalogue.include {
            resolver.add(IncludeFileResolver::new(dir.clone()));
        }
        resolver.add(GoogleFileResolver::new());
        let mut compiler = protox::Compiler::with_file_resolver(resolver);
        // Source info: an annotation missing from a method is reported at
        // the method's line in the contract.
        compiler.include_imports(true).include_source_info(true);

        let mut owner: HashMap<&str, &AgencyId> = HashMap::new();
        for agency in &config.agencies {
            for contract in &agency.contracts {
                if let Some(first) = owner.insert(contract, &agency.id) {
                    if first != &agency.id {
                        errors.0.push(ConfigError {
                            at: Some(agency.at.clone()),
                            message: format!(
                                "contract `{contract}` is listed by agencies `{first}` and `{}`",
                                agency.id
                            ),
                            fix: "list each contract under the one agency that provides it".into(),
                        });
                    }
                    continue;
                }
                if let Err(e) = compiler.open_file(contract) {
                    errors
                        .0
                        .push(protox_error(&e, contract, &agency.at, config));
                }
            }
        }
        if !errors.0.is_empty() {
            return Err(errors);
        }
        let pool = compiler.descriptor_pool();
        let catalogue = build(&pool, &owner, config, &mut errors);
        if errors.0.is_empty() {
            Ok(catalogue)
        } else {
            Err(errors)
        }
    }
}

fn build(
    pool: &DescriptorPool,
    owner: &HashMap<&str, &AgencyId>,
    config: &Config,
    errors: &mut ConfigErrors,
) -> Catalogue {
    let annotations = Annotations::of(pool);
    let mut by_path = HashMap::new();
    for service in pool.services() {
        let Some(provider) = owner.get(service.parent_file().name()) else {
            continue; // an imported file: its services are not offered here
        };
        let at = agency_location(config, provider);
        if super::is_reserved_service(service.full_name()) {
            errors.0.push(reserved_service(&service, at));
            continue;
        }
        let routes = service_routes(&service, provider, &annotations, &at, errors);
        let places = Places {
            include: &config.catalogue.include,
            fallback: at,
        };
        errors
            .0
            .extend(annotations::check_service(&service, &routes, &places));
        for (_, route) in routes {
            by_path.insert(route.path.clone(), Arc::new(route));
        }
    }
    let mut ordered: Vec<_> = by_path.values().cloned().collect();
    ordered.sort_by(|a, b| (&a.provider, &a.path).cmp(&(&b.provider, &b.path)));
    Catalogue {
        pool: pool.clone(),
        by_path,
        ordered,
    }
}

fn reserved_service(service: &ServiceDescriptor, at: Option<Location>) -> ConfigError {
    ConfigError {
        at,
        message: format!(
            "contract `{}` declares `{}`, in a package reserved for the gateway's own services (grpc.health, grpc.reflection, jisr)",
            service.parent_file().name(),
            service.full_name()
        ),
        fix: "give the agency's contract a package of its own, e.g. `ma.<agency>.v1`".into(),
    }
}

/// The routes of one provider's service. A method whose request has no
/// usable subject is reported and left out, so every error shows at once.
fn service_routes(
    service: &ServiceDescriptor,
    provider: &AgencyId,
    annotations: &Annotations,
    at: &Option<Location>,
    errors: &mut ConfigErrors,
) -> Vec<(MethodDescriptor, MethodRoute)> {
    let service_category = annotations.service_category(service);
    let mut routes = Vec::new();
    for method in service.methods() {
        let category = annotations.method_category(&method, service_category);
        match method_route(
            &method,
            provider.clone(),
            category,
            annotations.subject.as_ref(),
        ) {
            Ok(mut route) => {
                route.no_subject = annotations.no_subject(&method);
                routes.push((method, route));
            }
            Err(message) => errors.0.push(ConfigError {
                at: at.clone(),
                message: format!("contract `{}`: {message}", service.parent_file().name()),
                fix: "mark exactly one string field of the request with `[(jisr.subject) = true]`"
                    .into(),
            }),
        }
    }
    routes
}

fn method_route(
    method: &MethodDescriptor,
    provider: AgencyId,
    category: Category,
    subject_ext: Option<&ExtensionDescriptor>,
) -> Result<MethodRoute, String> {
    let service = method.parent_service();
    let input = method.input();
    let subject = match subject_ext {
        Some(ext) => find_subject(&input, ext)?,
        None => None,
    };
    let (numbers, names): (Vec<u32>, Vec<String>) = subject.unwrap_or_default().into_iter().unzip();
    let streaming = match (method.is_client_streaming(), method.is_server_streaming()) {
        (false, false) => Streaming::Unary,
        (false, true) => Streaming::Server,
        (true, false) => Streaming::Client,
        (true, true) => Streaming::Bidi,
    };
    Ok(MethodRoute {
        path: format!("/{}/{}", service.full_name(), method.name()),
        service: service.full_name().to_owned(),
        method: method.name().to_owned(),
        provider,
        category,
        streaming,
        request_type: input.full_name().to_owned(),
        response: method.output(),
        subject_field: (!names.is_empty()).then(|| names.join(".")),
        no_subject: None,
        schema: wire::Schema::compile(&input, numbers),
    })
}

fn agency_location(config: &Config, id: &AgencyId) -> Option<Location> {
    config
        .agencies
        .iter()
        .find(|a| &a.id == id)
        .map(|a| a.at.clone())
}

/// Turns a protox error into a located config error: inside the contract
/// when protox says where, else at the agency that names the contract.
fn protox_error(e: &protox::Error, contract: &str, at: &Location, config: &Config) -> ConfigError {
    use miette::Diagnostic;
    let file = e.file().unwrap_or(contract).to_owned();
    let offset = e
        .labels()
        .and_then(|mut labels| labels.next())
        .map(|label| label.offset());
    let on_disk = find_on_disk(&file, &config.catalogue.include);
    let location = match (&on_disk, offset) {
        (Some(path), Some(offset)) => std::fs::read_to_string(path)
            .ok()
            .map(|text| location_of(path, &text, offset)),
        _ => None,
    };
    let (message, fix) = if e.is_file_not_found() {
        // protox reports an import it cannot find inside the importing file
        // (with the span of the `import`), and a missing contract on its own.
        let missing_import = offset.is_some() || e.to_string().starts_with("import ");
        let message = if missing_import {
            format!("contract `{file}`: {e} in any catalogue.include directory")
        } else {
            format!("contract `{file}` was not found in any catalogue.include directory")
        };
        (
            message,
            format!(
                "check the path (relative to an include directory) or add its directory to `catalogue.include`; searched: {}",
                config
                    .catalogue
                    .include
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
    } else if let Some(name) = unimported_annotation(e, on_disk.as_deref()) {
        (
            format!("contract `{file}` uses `({name})` but does not import `{}`, which defines it", annotations::IMPORT),
            format!("add `import \"{}\";` after the `package` line of `{file}` (the gateway has the file built in)", annotations::IMPORT),
        )
    } else {
        (
            format!("contract `{file}` does not compile: {e}"),
            e.help()
                .map(|h| h.to_string())
                .unwrap_or_else(|| "fix the .proto file; `jisr check-config` re-checks it".into()),
        )
    };
    ConfigError {
        at: Some(location.unwrap_or_else(|| at.clone())),
        message,
        fix,
    }
}

/// The `jisr.*` name a contract uses without importing the annotations
/// (protox only says the name is not defined).
fn unimported_annotation(e: &protox::Error, on_disk: Option<&Path>) -> Option<String> {
    let text = e.to_string();
    if !text.contains("is not defined") {
        return None;
    }
    let name = text.split('\'').nth(1)?;
    let name = name.trim_matches(|c| c == '(' || c == ')' || c == '.');
    if !name.starts_with("jisr.") {
        return None;
    }
    let imported = on_disk
        .and_then(|path| std::fs::read_to_string(path).ok())
        .is_some_and(|source| source.contains(annotations::IMPORT));
    (!imported).then(|| name.to_owned())
}

pub(super) fn find_on_disk(name: &str, include: &[PathBuf]) -> Option<PathBuf> {
    include
        .iter()
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

fn location_of(path: &Path, text: &str, offset: usize) -> Location {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    // Columns count characters, as in config errors.
    let column = before[before.rfind('\n').map_or(0, |nl| nl + 1)..]
        .chars()
        .count()
        + 1;
    Location {
        file: path.to_owned(),
        line,
        column,
    }
}
