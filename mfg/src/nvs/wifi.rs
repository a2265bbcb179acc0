//! Entries the generator derives from Wi-Fi credentials: for `ap.ssid`, `ap.passwd` and
//! `ap.authmode` the access point's PMK (`ap.pmk_info`), and after the first of `sta.ssid` or
//! `sta.pswd` the station's cached records (`sta.apinfo`, `sta.pmk`, `sta.apsw`).

use super::value::Payload;

/// Keys whose rows make the generator add entries.
pub(crate) const KEYS: [&str; 5] = [
    "ap.ssid",
    "ap.passwd",
    "ap.authmode",
    "sta.ssid",
    "sta.pswd",
];

/// An entry the generator adds on its own.
pub(crate) struct Derived {
    pub key: &'static str,
    pub payload: Payload,
}

/// What the generator remembers between rows.
#[derive(Default)]
pub(crate) struct WifiState {
    ap_ssid: Option<String>,
    ap_passwd: Option<String>,
    ap_authmode: Option<String>,
    sta_extras_written: bool,
}

impl WifiState {
    /// Entries written just before the row `key = value` (the access point's PMK, once the
    /// SSID, password and a non-zero auth mode are all known).
    pub(crate) fn before(&mut self, key: &str, value: &str) -> Vec<Derived> {
        match key {
            "ap.ssid" => self.ap_ssid = Some(value.to_string()),
            "ap.passwd" => self.ap_passwd = Some(value.to_string()),
            "ap.authmode" if value != "0" => self.ap_authmode = Some(value.to_string()),
            _ => return Vec::new(),
        }
        let known = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.is_empty());
        if !(known(&self.ap_ssid) && known(&self.ap_passwd) && known(&self.ap_authmode)) {
            return Vec::new();
        }
        let (ssid, passwd) = (
            self.ap_ssid.as_deref().unwrap_or(""),
            self.ap_passwd.as_deref().unwrap_or(""),
        );
        let mut pmk = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<sha1::Sha1>(passwd.as_bytes(), ssid.as_bytes(), 4096, &mut pmk);
        let mut info = vec![0u8; 100];
        info.extend_from_slice(&pmk);
        vec![Derived {
            key: "ap.pmk_info",
            payload: Payload::Blob(info),
        }]
    }

    /// Entries written just after the row `key` (the station records, once).
    pub(crate) fn after(&mut self, key: &str) -> Vec<Derived> {
        if !matches!(key, "sta.ssid" | "sta.pswd") || self.sta_extras_written {
            return Vec::new();
        }
        self.sta_extras_written = true;
        vec![
            Derived {
                key: "sta.apinfo",
                payload: Payload::Blob(vec![0xFF; 140]),
            },
            Derived {
                key: "sta.pmk",
                payload: Payload::Blob(vec![0; 32]),
            },
            Derived {
                key: "sta.apsw",
                payload: Payload::Blob(vec![0; 2]),
            },
        ]
    }
}
