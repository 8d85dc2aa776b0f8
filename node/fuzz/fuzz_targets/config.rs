//! `Config::resolve` — what `rapport run` does with `config.toml`'s text once read — on
//! arbitrary text: it must return a typed error or a configuration, never panic; and a
//! configuration it accepts must be valid and keep every setting the file made.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use rapport_node::config::{Config, Layer, Network, CONFIG_FILE};

fuzz_target!(|data: &[u8]| {
    // `Config::load` reads the file as UTF-8 and refuses it otherwise.
    let Ok(text) = std::str::from_utf8(data) else { return };
    let dir = Path::new("/rapport");
    let Ok(config) = Config::resolve(dir, Layer::default(), Some(text)) else { return };
    // Valid: the checks of `resolve` hold, and the network is a known profile.
    assert!(config.target_peers <= config.max_connections, "{config:?}");
    assert!(config.max_memory_fraction > 0.0 && config.max_memory_fraction <= 1.0, "{config:?}");
    assert_eq!(Network::named(&config.network.name).as_ref().ok(), Some(&config.network));
    // With no flags, the file beats the profile and the defaults in every setting it makes.
    let file = Layer::parse(text, &dir.join(CONFIG_FILE)).expect("a file that resolves parses");
    let c = &config;
    assert!(file.network.as_ref().is_none_or(|v| *v == c.network.name));
    assert!(file.listen.as_ref().is_none_or(|v| *v == c.listen));
    assert!(file.api.is_none_or(|v| v == c.api));
    assert!(file.bootstrap.as_ref().is_none_or(|v| *v == c.bootstrap));
    assert!(file.mdns.is_none_or(|v| v == c.mdns));
    assert!(file.max_connections.is_none_or(|v| v == c.max_connections));
    assert!(file.max_connections_per_peer.is_none_or(|v| v == c.max_connections_per_peer));
    assert!(file.target_peers.is_none_or(|v| v == c.target_peers));
    assert!(file.max_memory_fraction.is_none_or(|v| v == c.max_memory_fraction));
    assert!(file.store.is_none_or(|v| v == c.store));
    // The same settings given as flags, with no file, resolve the same.
    assert_eq!(Config::resolve(dir, file, None).expect("the same settings as flags resolve"), config);
});
