//! TLS to PostgreSQL: what the settings (`DB_SSL`, `DB_SSL_MODE`,
//! `DB_SSL_REJECT_UNAUTHORIZED`, `DB_SSL_CA`) and the URL's own parameters
//! (`sslmode`, `sslrootcert`) ask for, weighed together.
//!
//! The rule: no source silently overrides another. Each setting given is a
//! requirement on the one mode the connection uses; the mode is the one named
//! (`DB_SSL_MODE` or the URL's `sslmode`, which must then agree), or else follows
//! from `DB_SSL` (and `DB_SSL_REJECT_UNAUTHORIZED`) or from a CA file being given.
//! A requirement the mode does not meet is an error naming the setting, so that a
//! deployment that believes it verifies its server never connects unverified.

use std::fmt;
use std::path::{Path, PathBuf};

use flowstore_core::{StoreError, StoreResult};
use sqlx::postgres::PgSslMode;

/// How a connection to PostgreSQL uses TLS; libpq's `sslmode` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SslMode {
    /// Never TLS.
    Disable,
    /// Plain, TLS only if the server insists (the driver connects plain).
    Allow,
    /// TLS when the server offers it, plain otherwise; the certificate is not checked.
    Prefer,
    /// TLS or no connection; the certificate is not checked.
    Require,
    /// TLS with a certificate signed by a trusted CA; the host name is not meant to
    /// be checked, but sqlx 0.8.6 over rustls 0.23.24+ checks it too (sqlx issue
    /// #3793): stricter, never weaker.
    VerifyCa,
    /// TLS with a trusted certificate issued for the host connected to.
    VerifyFull,
}

impl SslMode {
    /// Reads a mode as libpq spells it; an error names `setting`.
    pub fn parse(setting: &str, value: &str) -> StoreResult<SslMode> {
        Ok(match value.trim().to_ascii_lowercase().as_str() {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" | "verify_ca" => SslMode::VerifyCa,
            "verify-full" | "verify_full" => SslMode::VerifyFull,
            _ => {
                return Err(StoreError::invalid(
                    setting,
                    format!(
                        "{value:?} is not an sslmode: disable, allow, prefer, require, \
                         verify-ca or verify-full"
                    ),
                ))
            }
        })
    }

    /// The mode as libpq spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    /// Whether a connection without TLS is refused.
    pub fn requires_tls(self) -> bool {
        matches!(
            self,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull
        )
    }

    /// Whether the server's certificate is checked.
    pub fn verifies(self) -> bool {
        matches!(self, SslMode::VerifyCa | SslMode::VerifyFull)
    }

    fn to_sqlx(self) -> PgSslMode {
        match self {
            SslMode::Disable => PgSslMode::Disable,
            SslMode::Allow => PgSslMode::Allow,
            SslMode::Prefer => PgSslMode::Prefer,
            SslMode::Require => PgSslMode::Require,
            SslMode::VerifyCa => PgSslMode::VerifyCa,
            SslMode::VerifyFull => PgSslMode::VerifyFull,
        }
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The TLS settings as given, before they are weighed with the URL; `None` is a
/// setting not given.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsSettings {
    /// `DB_SSL`: true requires TLS (verified unless `DB_SSL_REJECT_UNAUTHORIZED` is
    /// false), false forbids it.
    pub ssl: Option<bool>,
    /// `DB_SSL_MODE` (alias of the URL's `sslmode`).
    pub mode: Option<SslMode>,
    /// `DB_SSL_REJECT_UNAUTHORIZED`: true requires a verified certificate when TLS is
    /// used, false requires a mode that checks none. Moot when TLS is off.
    pub reject_unauthorized: Option<bool>,
    /// `DB_SSL_CA` (alias of the URL's `sslrootcert`): the PEM file of the CAs
    /// trusted to sign the server's certificate.
    pub root_cert: Option<PathBuf>,
}

/// TLS as a connection will use it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tls {
    /// The mode; `None` leaves the driver's default (`prefer`, or `PGSSLMODE`).
    pub mode: Option<SslMode>,
    /// The setting the mode comes from, for errors.
    pub mode_from: &'static str,
    /// The CA file, when one is given.
    pub root_cert: Option<PathBuf>,
    /// The setting the CA file comes from, for errors.
    pub root_cert_from: &'static str,
}

impl TlsSettings {
    /// The setting that asks for TLS, if any: what a database without connections
    /// (SQLite) cannot honour. Settings that ask for none (`DB_SSL=false`,
    /// `prefer`, `DB_SSL_REJECT_UNAUTHORIZED` alone) are not.
    ///
    /// Answers the setting and what it says (`DB_SSL_MODE=verify-full`).
    pub fn asks_for_tls(&self) -> Option<(&'static str, String)> {
        if let Some(mode) = self.mode.filter(|m| m.requires_tls()) {
            Some(("DB_SSL_MODE", format!("DB_SSL_MODE={mode}")))
        } else if self.ssl == Some(true) {
            Some(("DB_SSL", "DB_SSL=true".into()))
        } else {
            self.root_cert
                .as_ref()
                .map(|ca| ("DB_SSL_CA", format!("DB_SSL_CA={}", ca.display())))
        }
    }

    /// Weighs these settings with the `sslmode` and `sslrootcert` of `url`; an error
    /// names the setting a contradiction involves.
    pub fn resolve(&self, url: &str) -> StoreResult<Tls> {
        let (url_mode, url_root_cert) = url_parameters(url)?;
        // The named modes must agree; the URL's is named `DATABASE_URL` in errors.
        let named = match (self.mode, url_mode) {
            (Some(a), Some(b)) if a != b => {
                return Err(StoreError::invalid(
                    "DB_SSL_MODE",
                    format!("{a} contradicts sslmode={b} in DATABASE_URL"),
                ))
            }
            (Some(a), _) => Some((a, "DB_SSL_MODE")),
            (None, Some(b)) => Some((b, "DATABASE_URL")),
            (None, None) => None,
        };
        let (root_cert, root_cert_from) = match (&self.root_cert, url_root_cert) {
            (Some(a), Some(b)) if *a != b => {
                return Err(StoreError::invalid(
                    "DB_SSL_CA",
                    format!(
                        "{} contradicts sslrootcert={} in DATABASE_URL",
                        a.display(),
                        b.display()
                    ),
                ))
            }
            (Some(a), _) => (Some(a.clone()), "DB_SSL_CA"),
            (None, Some(b)) => (Some(b), "DATABASE_URL"),
            (None, None) => (None, "DB_SSL_CA"),
        };
        let mode = match (named, self.ssl) {
            (Some(named), _) => Some(named),
            (None, Some(true)) if self.reject_unauthorized == Some(false) => {
                Some((SslMode::Require, "DB_SSL"))
            }
            (None, Some(true)) => Some((SslMode::VerifyFull, "DB_SSL")),
            (None, Some(false)) => Some((SslMode::Disable, "DB_SSL")),
            // A CA file given alone asks for the certificate to be checked against it.
            (None, None) if root_cert.is_some() => Some((SslMode::VerifyFull, root_cert_from)),
            (None, None) => None,
        };
        // With a CA file, `require` checks the chain as `verify-ca` does (libpq's rule).
        let mode = match mode {
            Some((SslMode::Require, from)) if root_cert.is_some() => {
                Some((SslMode::VerifyCa, from))
            }
            other => other,
        };
        if let Some((mode, from)) = mode {
            let said = |setting: &str, value: &str| {
                StoreError::invalid(
                    setting.to_string(),
                    format!("{setting}={value} contradicts sslmode {mode} (from {from})"),
                )
            };
            match self.ssl {
                Some(true) if !mode.requires_tls() => return Err(said("DB_SSL", "true")),
                Some(false) if mode != SslMode::Disable => return Err(said("DB_SSL", "false")),
                _ => {}
            }
            // Verification is moot without TLS: seed 002's own example sets
            // `DB_SSL=false` with `DB_SSL_REJECT_UNAUTHORIZED=true`.
            if mode != SslMode::Disable {
                match self.reject_unauthorized {
                    Some(true) if !mode.verifies() => {
                        return Err(said("DB_SSL_REJECT_UNAUTHORIZED", "true"))
                    }
                    Some(false) if mode.verifies() => {
                        return Err(said("DB_SSL_REJECT_UNAUTHORIZED", "false"))
                    }
                    _ => {}
                }
            }
            if root_cert.is_some() && !mode.verifies() {
                return Err(StoreError::invalid(
                    root_cert_from,
                    format!(
                        "a CA file is given but sslmode {mode} (from {from}) checks no \
                         certificate: use verify-ca or verify-full"
                    ),
                ));
            }
        }
        Ok(Tls {
            mode: mode.map(|(m, _)| m),
            mode_from: mode.map_or("DB_SSL_MODE", |(_, from)| from),
            root_cert,
            root_cert_from,
        })
    }
}

impl Tls {
    /// Sets the mode and reads the CA file into `options`; a CA file that cannot be
    /// read, or holds no certificate, is an error naming it and its setting.
    pub(crate) fn apply(
        &self,
        mut options: sqlx::postgres::PgConnectOptions,
    ) -> StoreResult<sqlx::postgres::PgConnectOptions> {
        if let Some(mode) = self.mode {
            options = options.ssl_mode(mode.to_sqlx());
        }
        if let Some(path) = &self.root_cert {
            options = options.ssl_root_cert_from_pem(read_ca(self.root_cert_from, path)?);
        }
        Ok(options)
    }
}

/// The CA file's bytes, checked to hold at least one PEM certificate so that a
/// wrong file is reported as such and not as a failed handshake.
fn read_ca(setting: &str, path: &Path) -> StoreResult<Vec<u8>> {
    let pem = std::fs::read(path).map_err(|e| {
        StoreError::invalid(
            setting,
            format!("cannot read the CA file {}: {e}", path.display()),
        )
    })?;
    if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
        return Err(StoreError::invalid(
            setting,
            format!("the CA file {} holds no PEM certificate", path.display()),
        ));
    }
    Ok(pem)
}

/// The `sslmode` and `sslrootcert` of a PostgreSQL URL (sqlx's spellings too).
fn url_parameters(url: &str) -> StoreResult<(Option<SslMode>, Option<PathBuf>)> {
    let Ok(parsed) = url::Url::parse(url) else {
        // sqlx reports a URL it cannot read, when it parses it.
        return Ok((None, None));
    };
    let mut mode = None;
    let mut root_cert = None;
    for (k, v) in parsed.query_pairs() {
        match &*k {
            "sslmode" | "ssl-mode" => mode = Some(SslMode::parse("DATABASE_URL", &v)?),
            "sslrootcert" | "ssl-root-cert" | "ssl-ca" => root_cert = Some(PathBuf::from(&*v)),
            _ => {}
        }
    }
    Ok((mode, root_cert))
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "postgres://u@db/x";

    fn field(r: StoreResult<Tls>) -> String {
        r.unwrap_err().field().unwrap_or_default().to_string()
    }

    #[test]
    fn db_ssl_verifies_unless_told_not_to() {
        let s = TlsSettings {
            ssl: Some(true),
            ..Default::default()
        };
        assert_eq!(s.resolve(URL).unwrap().mode, Some(SslMode::VerifyFull));
        let s = TlsSettings {
            reject_unauthorized: Some(false),
            ..s
        };
        assert_eq!(s.resolve(URL).unwrap().mode, Some(SslMode::Require));
        let s = TlsSettings {
            ssl: Some(false),
            reject_unauthorized: Some(true),
            ..Default::default()
        };
        assert_eq!(s.resolve(URL).unwrap().mode, Some(SslMode::Disable));
        assert_eq!(TlsSettings::default().resolve(URL).unwrap().mode, None);
    }

    #[test]
    fn contradictions_name_the_setting() {
        let s = TlsSettings {
            ssl: Some(false),
            mode: Some(SslMode::VerifyFull),
            ..Default::default()
        };
        let e = s.resolve(URL).unwrap_err();
        assert_eq!(e.field(), Some("DB_SSL"));
        assert!(e.to_string().contains("verify-full"), "{e}");
        let s = TlsSettings {
            ssl: Some(true),
            mode: Some(SslMode::Prefer),
            ..Default::default()
        };
        assert_eq!(field(s.resolve(URL)), "DB_SSL");
        let s = TlsSettings {
            reject_unauthorized: Some(true),
            ..Default::default()
        };
        assert_eq!(
            field(s.resolve("postgres://db/x?sslmode=require")),
            "DB_SSL_REJECT_UNAUTHORIZED"
        );
        let s = TlsSettings {
            mode: Some(SslMode::VerifyCa),
            ..Default::default()
        };
        assert_eq!(
            field(s.resolve("postgres://db/x?sslmode=disable")),
            "DB_SSL_MODE"
        );
        let s = TlsSettings {
            root_cert: Some("/a.pem".into()),
            mode: Some(SslMode::Prefer),
            ..Default::default()
        };
        assert_eq!(field(s.resolve(URL)), "DB_SSL_CA");
        let s = TlsSettings {
            root_cert: Some("/a.pem".into()),
            ..Default::default()
        };
        assert_eq!(
            field(s.resolve("postgres://db/x?sslrootcert=/b.pem")),
            "DB_SSL_CA"
        );
        assert_eq!(
            field(TlsSettings::default().resolve("postgres://db/x?sslmode=sometimes")),
            "DATABASE_URL"
        );
    }

    #[test]
    fn settings_and_url_combine_when_they_agree() {
        let s = TlsSettings {
            ssl: Some(true),
            ..Default::default()
        };
        let t = s
            .resolve("postgres://db/x?sslmode=verify-ca&sslrootcert=/ca.pem")
            .unwrap();
        assert_eq!(t.mode, Some(SslMode::VerifyCa));
        assert_eq!(t.mode_from, "DATABASE_URL");
        assert_eq!(t.root_cert.as_deref(), Some(Path::new("/ca.pem")));
        let s = TlsSettings {
            root_cert: Some("/ca.pem".into()),
            ..Default::default()
        };
        let t = s.resolve(URL).unwrap();
        assert_eq!(t.mode, Some(SslMode::VerifyFull));
        assert_eq!(t.root_cert_from, "DB_SSL_CA");
        // libpq's rule: `require` with a CA file checks the chain.
        let t = s.resolve("postgres://db/x?sslmode=require").unwrap();
        assert_eq!(t.mode, Some(SslMode::VerifyCa));
        let s = TlsSettings {
            mode: Some(SslMode::Prefer),
            reject_unauthorized: Some(false),
            ..Default::default()
        };
        assert_eq!(
            s.resolve("postgres://db/x?sslmode=prefer").unwrap().mode,
            Some(SslMode::Prefer)
        );
    }

    #[test]
    fn a_missing_ca_file_is_named() {
        let t = Tls {
            mode: Some(SslMode::VerifyFull),
            mode_from: "DB_SSL",
            root_cert: Some("/nonexistent/flowstore-ca.pem".into()),
            root_cert_from: "DB_SSL_CA",
        };
        let e = t
            .apply(sqlx::postgres::PgConnectOptions::new())
            .unwrap_err();
        assert_eq!(e.field(), Some("DB_SSL_CA"));
        assert!(
            e.to_string().contains("/nonexistent/flowstore-ca.pem"),
            "{e}"
        );
    }
}
