//! Settings, layered defaults < config file < environment (`DARS_*`) < command-line flags.
//! Validated here, with no side effects; an unknown key or a bad value names itself.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

/// Everything dars can be told. Every field has a default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Folder holding the store.
    pub data: PathBuf,
    /// Address and port `dars serve` listens on.
    pub listen: SocketAddr,
    /// The centre's name, shown to technicians and announced on the network.
    pub centre_name: String,
    /// Publisher public keys whose packages are trusted (the form `dars keygen` prints).
    pub trusted_keys: Vec<String>,
    /// Package locations to sync from.
    pub upstreams: Vec<String>,
    /// How often to sync, e.g. "6h" or "30m".
    pub sync_interval: String,
    /// Bandwidth cap for scheduled syncs, bytes per second ("200k", "1M"); empty: no cap.
    pub sync_max_rate: String,
    /// Where USB sticks appear when plugged in.
    pub usb_roots: Vec<PathBuf>,
    /// Seconds a client has to send its request headers.
    pub header_timeout_secs: u64,
    /// Seconds a request may take before the server gives up on it.
    pub request_timeout_secs: u64,
    /// Open connections at once; beyond it new ones get a 503 with Retry-After.
    pub max_connections: usize,
    /// Largest lesson upload the console accepts, in MB.
    pub max_upload_mb: u64,
    /// The most an uploaded zip may unpack to, in MB (a zip bomb is refused sooner, by ratio).
    pub max_unpacked_mb: u64,
    /// Seconds a kept-alive connection may sit with no request before it is closed.
    pub idle_timeout_secs: u64,
    /// Seconds a response may wait for the client to take any byte before it is dropped.
    pub send_timeout_secs: u64,
    /// Requests in flight at once from one client address; 0: no bound.
    pub per_client_requests: usize,
    /// Seconds a request over that bound waits for a turn before it gets 503.
    pub per_client_wait_secs: u64,
    /// Bytes per second for each large response ("1M", "500k"); 0: unpaced.
    #[serde(deserialize_with = "text_or_number")]
    pub bulk_rate: String,
    /// Responses of at least this many bytes are paced at `bulk_rate` ("1M").
    #[serde(deserialize_with = "text_or_number")]
    pub bulk_above: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data: PathBuf::from("dars-data"),
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            centre_name: "dars".to_owned(),
            trusted_keys: Vec::new(),
            upstreams: Vec::new(),
            sync_interval: "6h".to_owned(),
            sync_max_rate: String::new(),
            usb_roots: ["/media", "/run/media", "/mnt"].iter().map(PathBuf::from).collect(),
            header_timeout_secs: 10,
            request_timeout_secs: 30,
            max_connections: 4096,
            max_upload_mb: 256,
            max_unpacked_mb: 1024,
            idle_timeout_secs: 30,
            send_timeout_secs: 30,
            per_client_requests: 16,
            per_client_wait_secs: 2,
            bulk_rate: "1M".to_owned(),
            bulk_above: "1M".to_owned(),
        }
    }
}

/// Settings given as flags; `None` leaves the lower layers' value.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
}

/// The environment variables read, without their `DARS_` prefix.
const ENV_KEYS: &[&str] = &[
    "data",
    "listen",
    "centre_name",
    "trusted_keys",
    "upstreams",
    "sync_interval",
    "sync_max_rate",
    "usb_roots",
    "header_timeout_secs",
    "request_timeout_secs",
    "max_connections",
    "max_upload_mb",
    "max_unpacked_mb",
    "idle_timeout_secs",
    "send_timeout_secs",
    "per_client_requests",
    "per_client_wait_secs",
    "bulk_rate",
    "bulk_above",
];

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("the config file {0} does not exist; create it (see deploy/dars.toml) or leave out --config")]
    Missing(PathBuf),
    #[error("bad configuration: {0}")]
    Invalid(String),
}

impl Config {
    /// Loads the layers. `file` is the `--config` path (or `DARS_CONFIG`), if any.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Config, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            if !file.is_file() {
                return Err(ConfigError::Missing(file.to_path_buf()));
            }
            figment = figment.merge(Toml::file_exact(file));
        }
        figment = figment
            .merge(Env::prefixed("DARS_").only(ENV_KEYS))
            .merge(Serialized::defaults(overrides));
        let config: Config = figment.extract().map_err(|e| {
            let messages: Vec<String> = e.into_iter().map(|e| describe(&e)).collect();
            ConfigError::Invalid(messages.join("; "))
        })?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.centre_name.trim().is_empty() {
            return Err(ConfigError::Invalid("centre_name must not be empty".to_owned()));
        }
        if self.max_connections == 0 {
            return Err(ConfigError::Invalid("max_connections must be at least 1".to_owned()));
        }
        self.sync_every()?;
        self.sync_rate()?;
        for url in &self.upstreams {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(ConfigError::Invalid(format!(
                    "upstreams: {url:?} is not an http:// or https:// address"
                )));
            }
        }
        self.bulk()?;
        for (key, mb) in [
            ("max_upload_mb", self.max_upload_mb),
            ("max_unpacked_mb", self.max_unpacked_mb),
        ] {
            if mb == 0 {
                return Err(ConfigError::Invalid(format!("{key} = 0: write at least 1 (megabytes)")));
            }
        }
        for (key, secs) in [
            ("header_timeout_secs", self.header_timeout_secs),
            ("request_timeout_secs", self.request_timeout_secs),
            ("idle_timeout_secs", self.idle_timeout_secs),
            ("send_timeout_secs", self.send_timeout_secs),
        ] {
            if secs == 0 {
                return Err(ConfigError::Invalid(format!("{key} = 0: write at least 1 (seconds)")));
            }
        }
        for (i, key) in self.trusted_keys.iter().enumerate() {
            if let Err(e) = crate::keys::PublicKey::parse(key) {
                return Err(ConfigError::Invalid(format!(
                    "trusted_keys[{i}] = {key:?}: {e}; copy the key exactly as `dars keygen` printed it"
                )));
            }
        }
        Ok(())
    }

    /// `sync_interval` as a duration (at least a minute).
    pub fn sync_every(&self) -> Result<std::time::Duration, ConfigError> {
        humantime::parse_duration(self.sync_interval.trim())
            .ok()
            .filter(|d| d.as_secs() >= 60)
            .ok_or_else(|| {
                ConfigError::Invalid(format!(
                    "sync_interval = {:?}: write a duration of at least a minute such as \"30m\", \"6h\" or \"1d\"",
                    self.sync_interval
                ))
            })
    }

    /// `sync_max_rate` in bytes per second, if set.
    pub fn sync_rate(&self) -> Result<Option<u64>, ConfigError> {
        let text = self.sync_max_rate.trim();
        if text.is_empty() {
            return Ok(None);
        }
        parse_rate(text)
            .map(Some)
            .map_err(|e| ConfigError::Invalid(format!("sync_max_rate: {e}")))
    }

    /// What the console at /admin needs from these settings.
    pub fn console(&self) -> Result<crate::http::admin::ConsoleSettings, ConfigError> {
        let trusted = crate::service::package::parse_trusted(&self.trusted_keys)
            .map_err(|e| ConfigError::Invalid(format!("trusted_keys: {e}")))?;
        Ok(crate::http::admin::ConsoleSettings {
            centre_name: self.centre_name.clone(),
            usb_roots: self.usb_roots.clone(),
            trusted_keys: trusted.clone(),
            upstreams: self.upstreams.clone(),
            sync: crate::service::sync::SyncOptions {
                package: crate::service::package::ImportPackageOptions {
                    trusted,
                    allow_downgrade: false,
                },
                max_rate: self.sync_rate()?,
                ..crate::service::sync::SyncOptions::default()
            },
            max_upload: usize::try_from(self.max_upload_mb.saturating_mul(1 << 20)).unwrap_or(usize::MAX),
            unpack: crate::service::upload::UnpackLimits {
                max_bytes: self.max_unpacked_mb.saturating_mul(1 << 20),
                ..crate::service::upload::UnpackLimits::default()
            },
        })
    }

    /// `bulk_rate` and `bulk_above` in bytes (a rate of 0: unpaced).
    fn bulk(&self) -> Result<(u64, u64), ConfigError> {
        let rate = match self.bulk_rate.trim() {
            "" | "0" => 0,
            text => parse_rate(text).map_err(|e| ConfigError::Invalid(format!("bulk_rate: {e}")))?,
        };
        let above = parse_rate(&self.bulk_above).map_err(|e| ConfigError::Invalid(format!("bulk_above: {e}")))?;
        Ok((rate, above))
    }

    /// The server's limits from these settings.
    pub fn limits(&self) -> crate::http::Limits {
        let secs = std::time::Duration::from_secs;
        let (bulk_rate, bulk_above) = self.bulk().unwrap_or((0, u64::MAX));
        crate::http::Limits {
            header_timeout: secs(self.header_timeout_secs),
            idle_timeout: secs(self.idle_timeout_secs),
            send_timeout: secs(self.send_timeout_secs),
            request_timeout: secs(self.request_timeout_secs),
            max_connections: self.max_connections,
            per_client_requests: self.per_client_requests,
            per_client_wait: secs(self.per_client_wait_secs),
            bulk_rate,
            bulk_above,
            ..crate::http::Limits::default()
        }
    }
}

/// One figment error in a technician's words: a bad environment value names its variable.
fn describe(e: &figment::Error) -> String {
    let key = e.path.join(".");
    let from_env = e.metadata.as_ref().is_some_and(|m| m.name.contains("environment"));
    if from_env && !key.is_empty() {
        format!("environment variable DARS_{}: {}", key.to_uppercase(), e.kind)
    } else {
        e.to_string()
    }
}

/// A size or rate setting written either as text ("1M") or as a plain number (0, 500000).
fn text_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum TextOrNumber {
        Text(String),
        Number(u64),
    }
    Ok(match TextOrNumber::deserialize(d)? {
        TextOrNumber::Text(text) => text,
        TextOrNumber::Number(n) => n.to_string(),
    })
}

/// A rate such as `200k`, `1.5M` or `50000`, in bytes per second (k = 1000).
pub fn parse_rate(text: &str) -> Result<u64, String> {
    let t = text.trim().trim_end_matches("/s").trim_end_matches(['B', 'b']);
    let (number, scale) = match t.chars().last() {
        Some('k' | 'K') => (&t[..t.len() - 1], 1e3),
        Some('m' | 'M') => (&t[..t.len() - 1], 1e6),
        Some('g' | 'G') => (&t[..t.len() - 1], 1e9),
        _ => (t, 1.0),
    };
    match number.trim().parse::<f64>() {
        Ok(n) if n > 0.0 && n.is_finite() => Ok((n * scale) as u64),
        _ => Err(format!(
            "{text:?} is not a rate: write bytes per second such as 200k or 1.5M"
        )),
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment's Jail returns its own large error type
mod tests {
    use super::*;

    #[test]
    fn layers_apply_in_order() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "dars.toml",
                "data = \"/srv/file\"\nlisten = \"127.0.0.1:9000\"\ncentre_name = \"Quba\"\n",
            )?;
            jail.set_env("DARS_LISTEN", "127.0.0.1:9001");
            let flags = Overrides {
                data: Some(PathBuf::from("/srv/flag")),
                listen: None,
            };
            let config = Config::load(Some(Path::new("dars.toml")), &flags).map_err(|e| e.to_string())?;
            assert_eq!(config.data, PathBuf::from("/srv/flag"));
            assert_eq!(
                config.listen,
                "127.0.0.1:9001".parse::<SocketAddr>().map_err(|e| e.to_string())?
            );
            assert_eq!(config.centre_name, "Quba");
            assert_eq!(config.sync_interval, "6h");
            Ok(())
        });
    }

    #[test]
    fn environment_overrides_file_for_every_kind_of_value() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "dars.toml",
                "centre_name = \"Quba\"\nmax_connections = 10\nupstreams = [\"http://file/\"]\nsync_interval = \"1h\"\n",
            )?;
            jail.set_env("DARS_CENTRE_NAME", "Şəki");
            jail.set_env("DARS_MAX_CONNECTIONS", "20");
            jail.set_env("DARS_UPSTREAMS", "[\"http://env-a/\", \"http://env-b/\"]");
            jail.set_env("DARS_USB_ROOTS", "[\"/srv/usb\"]");
            let config =
                Config::load(Some(Path::new("dars.toml")), &Overrides::default()).map_err(|e| e.to_string())?;
            assert_eq!(config.centre_name, "Şəki");
            assert_eq!(config.max_connections, 20);
            assert_eq!(config.upstreams, ["http://env-a/", "http://env-b/"]);
            assert_eq!(config.usb_roots, [PathBuf::from("/srv/usb")]);
            // Left alone by the environment: the file's value, then the default.
            assert_eq!(config.sync_interval, "1h");
            assert_eq!(config.header_timeout_secs, 10);
            // A flag beats both.
            jail.set_env("DARS_DATA", "/srv/env");
            let flags = Overrides {
                data: Some(PathBuf::from("/srv/flag")),
                listen: Some("127.0.0.1:7000".parse().map_err(|e| format!("{e}"))?),
            };
            let config = Config::load(Some(Path::new("dars.toml")), &flags).map_err(|e| e.to_string())?;
            assert_eq!(config.data, PathBuf::from("/srv/flag"));
            assert_eq!(config.listen.port(), 7000);
            assert_eq!(config.centre_name, "Şəki");
            Ok(())
        });
    }

    #[test]
    fn bad_environment_values_are_named() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("DARS_MAX_CONNECTIONS", "lots");
            let err = Config::load(None, &Overrides::default()).expect_err("bad number");
            assert!(err.to_string().contains("DARS_MAX_CONNECTIONS"), "{err}");
            assert!(err.to_string().contains("lots"), "{err}");
            jail.set_env("DARS_MAX_CONNECTIONS", "0");
            let err = Config::load(None, &Overrides::default()).expect_err("zero");
            assert!(err.to_string().contains("max_connections"), "{err}");
            jail.set_env("DARS_MAX_CONNECTIONS", "5");
            jail.set_env("DARS_REQUEST_TIMEOUT_SECS", "0");
            let err = Config::load(None, &Overrides::default()).expect_err("zero timeout");
            assert!(err.to_string().contains("request_timeout_secs"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn every_bad_value_names_its_key() {
        let cases = [
            ("listen = 8080", "listen"),
            ("centre_name = \"  \"", "centre_name"),
            ("max_connections = -1", "max_connections"),
            ("header_timeout_secs = 0", "header_timeout_secs"),
            ("sync_interval = \"soon\"", "sync_interval"),
            ("sync_max_rate = \"fast\"", "sync_max_rate"),
            ("upstreams = [\"ftp://x/\"]", "upstreams"),
            ("upstreams = \"http://x/\"", "upstreams"),
            ("trusted_keys = [\"not-a-key\"]", "trusted_keys[0]"),
            ("usb_roots = 3", "usb_roots"),
            ("[listen]\nport = 1", "listen"),
        ];
        for (toml, key) in cases {
            figment::Jail::expect_with(|jail| {
                jail.create_file("c.toml", toml)?;
                let err = Config::load(Some(Path::new("c.toml")), &Overrides::default()).expect_err(toml);
                assert!(err.to_string().contains(key), "{toml}: {err}");
                Ok(())
            });
        }
    }

    #[test]
    fn defaults_are_valid_and_documented() {
        let defaults = Config::default();
        defaults.validate().expect("defaults validate");
        // Every setting appears in the documented example, so none is a secret.
        let example = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/dars.toml"))
            .expect("deploy/dars.toml");
        let serialized = toml::to_string(&defaults).expect("serialize");
        for line in serialized.lines().filter(|l| l.contains(" = ")) {
            let key = line.split(" = ").next().unwrap_or_default();
            assert!(
                example.lines().any(|l| l.starts_with(&format!("{key} = "))),
                "deploy/dars.toml does not document {key}"
            );
        }
    }

    #[test]
    fn rates_and_intervals() {
        assert_eq!(parse_rate("200k"), Ok(200_000));
        assert_eq!(parse_rate("1.5M"), Ok(1_500_000));
        assert_eq!(parse_rate("50000"), Ok(50_000));
        assert_eq!(parse_rate("2MB/s"), Ok(2_000_000));
        for bad in ["", "fast", "-1k", "0"] {
            assert!(parse_rate(bad).is_err(), "{bad:?}");
        }
        let mut config = Config::default();
        assert_eq!(config.sync_every().expect("6h").as_secs(), 6 * 3600);
        config.sync_interval = "10s".to_owned();
        assert!(
            config
                .sync_every()
                .expect_err("too short")
                .to_string()
                .contains("sync_interval")
        );
        config.sync_interval = "often".to_owned();
        assert!(config.sync_every().is_err());
        config.sync_max_rate = "lots".to_owned();
        assert!(
            config
                .sync_rate()
                .expect_err("bad rate")
                .to_string()
                .contains("sync_max_rate")
        );
    }

    #[test]
    fn the_documented_example_config_loads() {
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/dars.toml");
        let config = Config::load(Some(&example), &Overrides::default()).expect("deploy/dars.toml");
        assert_eq!(config.centre_name, "Quba computer centre");
        assert_eq!(config.data, PathBuf::from("/var/lib/dars"));
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("a.toml", "colour = \"red\"\n")?;
            let err = Config::load(Some(Path::new("a.toml")), &Overrides::default()).expect_err("unknown key");
            assert!(err.to_string().contains("colour"), "{err}");
            jail.create_file("b.toml", "listen = \"not an address\"\n")?;
            let err = Config::load(Some(Path::new("b.toml")), &Overrides::default()).expect_err("bad value");
            assert!(err.to_string().contains("listen"), "{err}");
            jail.create_file("c.toml", "bulk_rate = \"fast\"\n")?;
            let err = Config::load(Some(Path::new("c.toml")), &Overrides::default()).expect_err("bad rate");
            assert!(err.to_string().contains("bulk_rate"), "{err}");
            jail.create_file(
                "d.toml",
                "bulk_rate = 0\nbulk_above = 2000000\nper_client_requests = 4\n",
            )?;
            let limits = Config::load(Some(Path::new("d.toml")), &Overrides::default())
                .map_err(|e| e.to_string())?
                .limits();
            assert_eq!(
                (limits.bulk_rate, limits.bulk_above, limits.per_client_requests),
                (0, 2_000_000, 4)
            );
            jail.set_env("DARS_BULK_RATE", "0");
            jail.set_env("DARS_IDLE_TIMEOUT_SECS", "5");
            let limits = Config::load(None, &Overrides::default())
                .map_err(|e| e.to_string())?
                .limits();
            assert_eq!(limits.bulk_rate, 0);
            assert_eq!(limits.idle_timeout, std::time::Duration::from_secs(5));
            let err = Config::load(Some(Path::new("missing.toml")), &Overrides::default()).expect_err("missing");
            assert!(err.to_string().contains("does not exist"), "{err}");
            Ok(())
        });
    }
}
