//! The systemd notification protocol: READY=1 once listening, STOPPING=1 when
//! draining, and WATCHDOG=1 pings while `WatchdogSec` is set.

use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::time::Duration;

/// Where to send notifications, from `NOTIFY_SOCKET`; absent when not run by systemd.
#[derive(Debug, Clone)]
pub struct Notifier {
    socket: Option<PathBuf>,
}

impl Notifier {
    /// Reads `NOTIFY_SOCKET`. Abstract sockets (`@name`) are supported.
    pub fn from_env() -> Self {
        let socket = std::env::var_os("NOTIFY_SOCKET")
            .map(PathBuf::from)
            .filter(|path| !path.as_os_str().is_empty());
        Notifier { socket }
    }

    /// Sends one notification; failures are logged at debug level and ignored.
    pub fn notify(&self, state: &str) {
        let Some(path) = &self.socket else {
            return;
        };
        let result = UnixDatagram::unbound().and_then(|socket| {
            let text = path.to_string_lossy();
            match text.strip_prefix('@') {
                Some(name) => {
                    use std::os::linux::net::SocketAddrExt;
                    let address =
                        std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
                    socket.send_to_addr(state.as_bytes(), &address)
                }
                None => socket.send_to(state.as_bytes(), path),
            }
        });
        if let Err(error) = result {
            tracing::debug!(%error, state, "systemd notification failed");
        }
    }

    /// The watchdog interval systemd asked for (`WATCHDOG_USEC`), halved as advised,
    /// when it is meant for this process.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.socket.as_ref()?;
        let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
        if let Some(pid) = std::env::var("WATCHDOG_PID")
            .ok()
            .and_then(|pid| pid.parse::<u32>().ok())
        {
            if pid != std::process::id() {
                return None;
            }
        }
        (usec > 0).then(|| Duration::from_micros(usec / 2))
    }
}
