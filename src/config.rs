//! `.ctfix.toml`: an organisation's choices, kept beside its Terraform so every run (a
//! person's, CI's, a fleet's) makes the same fixes.
//!
//! The file is the nearest `.ctfix.toml` at or above a scanned path, stopping at the
//! repository's top (the directory holding `.git`), so each repository of a fleet run uses
//! its own; `--config FILE` names one instead. Command-line flags override the file. Every
//! key is checked before anything is read or written: an unknown key, a wrong type or a bad
//! value is an error with the file, line and column.
//!
//! ```toml
//! exclude = ["legacy/**", "vendor"]
//! unsafe-fixes = false
//! fail-on-unknown = true
//! use-key = "data.aws_kms_key.central.arn"   # or a key ARN; instead of generating keys
//!
//! [generated-key]
//! tags = { Owner = "security", "cost-center" = "1234" }
//! alias = "alias/cloudtrail/{trail}"
//! deletion-window-days = 14
//! multi-region = false
//! ```

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::key_template::{KeyOptions, UseKey};
use crate::model::FileError;

/// The file's name.
pub const FILE_NAME: &str = ".ctfix.toml";

/// A command-line pair that overrides a setting of the file: `--x` is `Some(true)`, `--no-x`
/// `Some(false)`, neither `None` (the file decides).
pub fn flag(on: bool, off: bool) -> Option<bool> {
    match (on, off) {
        (true, _) => Some(true),
        (_, true) => Some(false),
        _ => None,
    }
}

/// A loaded configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    /// Where it was read from.
    pub path: PathBuf,
    /// Globs of files and directories not to check, relative to the file's directory.
    pub exclude: Vec<String>,
    /// `unsafe-fixes`, when set.
    pub unsafe_fixes: Option<bool>,
    /// `fail-on-unknown`, when set.
    pub fail_on_unknown: Option<bool>,
    /// `[generated-key]` and `use-key`.
    pub key: KeyOptions,
}

impl Config {
    /// Applies the file to `settings`, flags winning: its key options and exclusions, and
    /// unsafe-fixes unless `unsafe_flag` (see [`flag`]) decides.
    pub fn apply_to(&self, settings: &mut crate::Settings, unsafe_flag: Option<bool>) {
        settings.key = self.key.clone();
        settings.exclude = self.exclusions();
        settings.min_applicability = if unsafe_flag.unwrap_or(self.unsafe_fixes == Some(true)) {
            crate::Applicability::Unsafe
        } else {
            crate::Applicability::Safe
        };
    }

    /// Whether unknown trails fail the run: `fail_flag` (see [`flag`]) over the file.
    pub fn fail_on_unknown(&self, fail_flag: Option<bool>) -> bool {
        fail_flag.unwrap_or(self.fail_on_unknown == Some(true))
    }

    /// The exclusions, anchored at the file's directory; `None` when there are none.
    pub fn exclusions(&self) -> Option<Exclude> {
        if self.exclude.is_empty() {
            return None;
        }
        let base = self.path.parent().unwrap_or(Path::new("."));
        Some(Exclude {
            base: std::fs::canonicalize(base).unwrap_or_else(|_| base.to_path_buf()),
            globs: self.exclude.clone(),
        })
    }
}

/// Paths left out of a run: `globs` matched against paths relative to `base`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Exclude {
    /// The directory the globs are relative to (canonical).
    pub base: PathBuf,
    /// The globs (already checked to compile).
    pub globs: Vec<String>,
}

impl Exclude {
    /// A matcher: `path` is excluded when a glob matches it or any directory above it
    /// (below `base`), so `vendor` leaves out everything under `vendor/`.
    pub fn matcher(&self) -> impl Fn(&Path) -> bool + Send + Sync + '_ {
        let mut builder = globset::GlobSetBuilder::new();
        for glob in &self.globs {
            if let Ok(glob) = globset::GlobBuilder::new(glob)
                .literal_separator(true)
                .build()
            {
                builder.add(glob);
            }
        }
        let set = builder
            .build()
            .unwrap_or_else(|_| globset::GlobSet::empty());
        move |path: &Path| {
            let absolute = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
            let Ok(relative) = absolute.strip_prefix(&self.base) else {
                return false;
            };
            relative
                .ancestors()
                .filter(|p| !p.as_os_str().is_empty())
                .any(|p| set.is_match(p))
        }
    }
}

/// The nearest `.ctfix.toml` at or above `path`, up to the repository's top (or the
/// filesystem's root outside a repository).
pub fn find(path: &Path) -> Option<PathBuf> {
    let start = std::fs::canonicalize(path).ok()?;
    let mut dir = if start.is_dir() {
        start.as_path()
    } else {
        start.parent()?
    };
    loop {
        let candidate = dir.join(FILE_NAME);
        if candidate.is_file() {
            return Some(candidate);
        }
        if dir.join(".git").exists() {
            return None;
        }
        dir = dir.parent()?;
    }
}

/// The configuration of a run over `paths`: the nearest `.ctfix.toml` of each, which must be
/// the same file (one run, one configuration; a fleet run calls this per repository).
/// `Ok(None)` when there is none.
pub fn find_for_paths(paths: &[PathBuf]) -> Result<Option<Config>, FileError> {
    let describe = |config: &Option<PathBuf>| match config {
        Some(path) => format!("the configuration {}", path.display()),
        None => "no configuration file".to_owned(),
    };
    let mut found: Option<(Option<PathBuf>, &Path)> = None;
    for path in paths {
        if std::fs::metadata(path).is_err() {
            continue; // the walk reports it
        }
        let config = find(path);
        match &found {
            Some((first, first_path)) if *first != config => {
                return Err(FileError::new(
                    path,
                    format!(
                        "uses {}, while {} uses {}: run ctfix once per repository, or pass --config FILE",
                        describe(&config),
                        first_path.display(),
                        describe(first)
                    ),
                ));
            }
            Some(_) => {}
            None => found = Some((config, path)),
        }
    }
    match found {
        Some((Some(config), _)) => load(&config).map(Some),
        _ => Ok(None),
    }
}

/// Reads and checks a configuration file.
pub fn load(path: &Path) -> Result<Config, FileError> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| FileError::new(path, format!("cannot read the configuration: {error}")))?;
    parse(path, &text)
}

/// The file as written: serde checks names and types.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawConfig {
    exclude: Option<Vec<Spanned<String>>>,
    unsafe_fixes: Option<bool>,
    fail_on_unknown: Option<bool>,
    generated_key: Option<RawGeneratedKey>,
    use_key: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawGeneratedKey {
    tags: Option<BTreeMap<Spanned<String>, Spanned<String>>>,
    alias: Option<Spanned<String>>,
    deletion_window_days: Option<Spanned<i64>>,
    multi_region: Option<bool>,
}

/// Parses and checks `text`, read from `path`.
pub fn parse(path: &Path, text: &str) -> Result<Config, FileError> {
    let error_at = |span: Range<usize>, message: String| {
        let (line, column) = crate::parse::line_col(text, span.start.min(text.len()));
        FileError::at(
            path,
            line,
            column,
            format!("invalid configuration: {message}"),
        )
    };
    let raw: RawConfig = toml::from_str(text).map_err(|error| {
        let message = error.message().trim_end().to_owned();
        error_at(error.span().unwrap_or(0..0), message)
    })?;
    let mut exclude = Vec::new();
    for glob in raw.exclude.unwrap_or_default() {
        if let Err(error) = globset::Glob::new(glob.get_ref()) {
            return Err(error_at(
                glob.span(),
                format!(
                    "exclude: {:?} is not a glob: {}",
                    glob.get_ref(),
                    error.kind()
                ),
            ));
        }
        exclude.push(glob.into_inner());
    }
    let mut key = KeyOptions::default();
    if let Some(generated) = raw.generated_key {
        for (name, value) in generated.tags.unwrap_or_default() {
            if name.get_ref().is_empty() || name.get_ref().len() > 128 {
                return Err(error_at(
                    name.span(),
                    "generated-key.tags: a tag key has 1 to 128 characters".to_owned(),
                ));
            }
            if name.get_ref().to_ascii_lowercase().starts_with("aws:") {
                return Err(error_at(
                    name.span(),
                    "generated-key.tags: the aws: prefix is reserved for AWS's own tags".to_owned(),
                ));
            }
            if value.get_ref().len() > 256 {
                return Err(error_at(
                    value.span(),
                    "generated-key.tags: a tag value has at most 256 characters".to_owned(),
                ));
            }
            key.tags.insert(name.into_inner(), value.into_inner());
        }
        if let Some(alias) = generated.alias {
            check_alias(alias.get_ref()).map_err(|message| {
                error_at(alias.span(), format!("generated-key.alias: {message}"))
            })?;
            key.alias = Some(alias.into_inner());
        }
        if let Some(days) = generated.deletion_window_days {
            let value = *days.get_ref();
            if !(7..=30).contains(&value) {
                return Err(error_at(
                    days.span(),
                    format!(
                        "generated-key.deletion-window-days is {value}; AWS KMS accepts 7 to 30"
                    ),
                ));
            }
            key.deletion_window_days = Some(value as u8);
        }
        key.multi_region = generated.multi_region.unwrap_or(false);
    }
    if let Some(use_key) = raw.use_key {
        key.use_key = Some(
            parse_use_key(use_key.get_ref())
                .map_err(|message| error_at(use_key.span(), format!("use-key: {message}")))?,
        );
    }
    Ok(Config {
        path: path.to_path_buf(),
        exclude,
        unsafe_fixes: raw.unsafe_fixes,
        fail_on_unknown: raw.fail_on_unknown,
        key,
    })
}

/// An alias pattern: `alias/…`, not AWS's reserved `alias/aws/`, letters, digits, `/`, `_`,
/// `-` and `{trail}` (required, so each trail's key gets its own alias).
fn check_alias(alias: &str) -> Result<(), String> {
    let Some(rest) = alias.strip_prefix("alias/") else {
        return Err(format!("{alias:?} must start with alias/"));
    };
    if rest.starts_with("aws/") {
        return Err(format!(
            "{alias:?}: alias/aws/ is reserved for AWS-managed keys"
        ));
    }
    if !alias.contains("{trail}") {
        return Err(format!(
            "{alias:?} must contain {{trail}}, so each trail's key gets its own alias"
        ));
    }
    let bare = alias.replace("{trail}", "");
    if let Some(c) = bare
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '-')))
    {
        return Err(format!(
            "{alias:?} holds {c:?}; alias names allow letters, digits, /, _ and -"
        ));
    }
    if alias.len() > 256 {
        return Err("an alias name has at most 256 characters".to_owned());
    }
    Ok(())
}

/// A key ARN (checked part by part) or a reference expression.
fn parse_use_key(text: &str) -> Result<UseKey, String> {
    if text.starts_with("arn:") {
        return check_key_arn(text).map(|()| UseKey::Arn(text.to_owned()));
    }
    let is_reference = !text.is_empty()
        && text.split('.').count() >= 2
        && text.split('.').all(crate::module::is_identifier)
        && !text.starts_with("aws_cloudtrail.");
    if !is_reference {
        return Err(format!(
            "{text:?} is neither a key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID) nor a reference such as var.cloudtrail_key_arn or data.aws_kms_key.central.arn"
        ));
    }
    let parts: Vec<&str> = text.split('.').collect();
    let enough = match parts[0] {
        "data" => parts.len() >= 4,
        "var" | "local" => parts.len() >= 2,
        "module" => parts.len() >= 3,
        _ => parts.len() >= 3,
    };
    if !enough {
        return Err(format!(
            "{text:?} names no attribute; write e.g. data.aws_kms_key.central.arn or aws_kms_key.central.arn"
        ));
    }
    Ok(UseKey::Expression(text.to_owned()))
}

/// `arn:<partition>:kms:<region>:<12-digit account>:key/<key id>`.
pub(crate) fn check_key_arn(arn: &str) -> Result<(), String> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let [_, partition, service, region, account, resource] = parts.as_slice() else {
        return Err(format!(
            "{arn:?} is not an ARN (arn:PARTITION:kms:REGION:ACCOUNT:key/ID)"
        ));
    };
    if !matches!(
        *partition,
        "aws"
            | "aws-cn"
            | "aws-us-gov"
            | "aws-iso"
            | "aws-iso-b"
            | "aws-iso-e"
            | "aws-iso-f"
            | "aws-eusc"
    ) {
        return Err(format!("{arn:?}: {partition:?} is not an AWS partition"));
    }
    if *service != "kms" {
        return Err(format!("{arn:?} is a {service} ARN, not a KMS key's"));
    }
    let region_ok = {
        let pieces: Vec<&str> = region.split('-').collect();
        pieces.len() >= 3
            && pieces[..pieces.len() - 1]
                .iter()
                .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase()))
            && pieces[pieces.len() - 1].chars().all(|c| c.is_ascii_digit())
            && !pieces[pieces.len() - 1].is_empty()
    };
    if !region_ok {
        return Err(format!(
            "{arn:?}: {region:?} is not a region (e.g. eu-west-1)"
        ));
    }
    if account.len() != 12 || !account.chars().all(|c| c.is_ascii_digit()) {
        return Err(format!("{arn:?}: the account {account:?} is not 12 digits"));
    }
    let Some(id) = resource.strip_prefix("key/") else {
        if resource.starts_with("alias/") {
            return Err(format!(
                "{arn:?} is an alias ARN; CloudTrail's kms_key_id needs the key's ARN (key/…)"
            ));
        }
        return Err(format!("{arn:?}: the resource must be key/ID"));
    };
    let uuid = |s: &str| {
        let groups: Vec<&str> = s.split('-').collect();
        groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
            && groups
                .iter()
                .all(|g| g.chars().all(|c| c.is_ascii_hexdigit()))
    };
    let multi_region = id
        .strip_prefix("mrk-")
        .is_some_and(|hex| hex.len() == 32 && hex.chars().all(|c| c.is_ascii_hexdigit()));
    if !uuid(id) && !multi_region {
        return Err(format!(
            "{arn:?}: {id:?} is not a key ID (a UUID, or mrk- and 32 hex digits)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_text(text: &str) -> Result<Config, FileError> {
        parse(Path::new("c/.ctfix.toml"), text)
    }

    #[test]
    fn every_key() {
        let config = parse_text(
            "exclude = [\"legacy/**\"]\nunsafe-fixes = true\nfail-on-unknown = true\nuse-key = \"var.central_key_arn\"\n[generated-key]\ntags = { Owner = \"sec\" }\nalias = \"alias/cloudtrail/{trail}\"\ndeletion-window-days = 7\nmulti-region = true\n",
        )
        .unwrap();
        assert_eq!(config.exclude, ["legacy/**"]);
        assert_eq!(config.unsafe_fixes, Some(true));
        assert_eq!(config.fail_on_unknown, Some(true));
        assert_eq!(config.key.deletion_window_days, Some(7));
        assert!(config.key.multi_region);
        assert_eq!(config.key.tags["Owner"], "sec");
        assert_eq!(
            config.key.use_key,
            Some(UseKey::Expression("var.central_key_arn".into()))
        );
    }

    #[test]
    fn errors_have_positions() {
        let cases = [
            ("unsafe-fixes = true\nnope = 1\n", 2, 1, "unknown field"),
            ("unsafe-fixes = \"yes\"\n", 1, 16, "boolean"),
            (
                "[generated-key]\ndeletion-window-days = 45\n",
                2,
                24,
                "7 to 30",
            ),
            ("[generated-key]\nalias = \"cloudtrail\"\n", 2, 9, "alias/"),
            (
                "[generated-key]\nalias = \"alias/aws/{trail}\"\n",
                2,
                9,
                "reserved",
            ),
            (
                "use-key = \"arn:aws:kms:us-east-1:12345:key/x\"\n",
                1,
                11,
                "12 digits",
            ),
            ("use-key = \"arn:aws:s3:::bucket\"\n", 1, 11, "s3"),
            ("use-key = \"central\"\n", 1, 11, "neither"),
            ("exclude = [\"a/[\"]\n", 1, 12, "not a glob"),
        ];
        for (text, line, column, words) in cases {
            let error = parse_text(text).unwrap_err();
            assert_eq!(
                (error.line, error.column),
                (Some(line), Some(column)),
                "{text}: {error:?}"
            );
            assert!(error.message.contains(words), "{text}: {}", error.message);
        }
    }

    #[test]
    fn key_arns() {
        for good in [
            "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
            "arn:aws-us-gov:kms:us-gov-west-1:123456789012:key/mrk-1234abcd12ab34cd56ef1234567890ab",
        ] {
            assert_eq!(check_key_arn(good), Ok(()), "{good}");
        }
        for bad in [
            "arn:aws:kms:eu-west-1:123456789012:alias/x",
            "arn:foo:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
            "arn:aws:kms:euwest1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
            "arn:aws:kms:eu-west-1:123456789012:key/not-a-uuid",
        ] {
            assert!(check_key_arn(bad).is_err(), "{bad}");
        }
    }
}
