//! Mail: the password-reset and email-verification messages, sent through the SMTP
//! server of the settings (lettre over tokio; rustls for `smtps://` and
//! `?tls=required`). A message is sent only after the transaction that made its
//! token has committed, on a task of its own: a slow or failing mail server never
//! holds a transaction and never changes an answer (which would tell whether an
//! account exists). A failure is logged and counted (`flowstore_mail_failed_total`).

use std::sync::atomic::Ordering;
use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::state::AppState;

/// How long one message may take to send, connection included.
const SEND_TIMEOUT: Duration = Duration::from_secs(20);

/// Where mail goes out and what its links point at.
#[derive(Clone, PartialEq, Eq)]
pub struct MailConfig {
    /// The SMTP server: `smtp://[user:password@]host[:port]` (plain, port 25; add
    /// `?tls=required` for STARTTLS, port 587) or `smtps://…` (TLS, port 465).
    pub smtp_url: String,
    /// The sender, `flowstore@example.com` or `Flowstore <flowstore@example.com>`.
    pub from: String,
    /// The address people reach the dashboard at, such as
    /// `https://flowstore.example.com`: links are `{public_url}/#/reset-password?token=…`
    /// and `{public_url}/#/verify-email?token=…` (a fragment, which browsers never
    /// send to a server, so the token stays out of access logs).
    pub public_url: String,
}

impl std::fmt::Debug for MailConfig {
    // The URL may carry the SMTP password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut url = url::Url::parse(&self.smtp_url).ok();
        if let Some(u) = url.as_mut().filter(|u| u.password().is_some()) {
            let _ = u.set_password(Some("<redacted>"));
        }
        f.debug_struct("MailConfig")
            .field("smtp_url", &url.map(|u| u.to_string()))
            .field("from", &self.from)
            .field("public_url", &self.public_url)
            .finish()
    }
}

impl MailConfig {
    /// Refuses settings that cannot send: an SMTP URL lettre cannot use, a sender
    /// that is not an address, a public URL that is not `http(s)://`. Each error
    /// names its setting.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        AsyncSmtpTransport::<Tokio1Executor>::from_url(&self.smtp_url)
            .map_err(|e| ("smtp_url", format!("cannot be used: {e}")))?;
        self.from
            .parse::<Mailbox>()
            .map_err(|e| ("mail_from", format!("is not an email address: {e}")))?;
        match url::Url::parse(&self.public_url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(()),
            _ => Err((
                "public_url",
                "must be an http:// or https:// URL".to_string(),
            )),
        }
    }

    fn link(&self, route: &str, token: &str) -> String {
        format!(
            "{}/#/{route}?token={token}",
            self.public_url.trim_end_matches('/')
        )
    }
}

/// What a message is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MailKind {
    /// A password-reset link (the token lasts an hour).
    PasswordReset,
    /// An email-verification link (the token lasts a day).
    Verification,
}

fn compose(config: &MailConfig, kind: MailKind, to: &str, token: &str) -> Result<Message, String> {
    let (subject, body) = match kind {
        MailKind::PasswordReset => (
            "Choose a new flowstore password",
            format!(
                "Someone asked to reset the password of the flowstore account of this \
                 address.\n\nTo choose a new password, open this link within an hour:\n\n{}\n\n\
                 Or send POST /api/v1/password-resets/confirm with {{\"token\": \"{token}\", \
                 \"password\": \"...\"}}.\n\nIf it was not you, ignore this message: your \
                 password stays as it is. Choosing a new one signs you out everywhere.\n",
                config.link("reset-password", token)
            ),
        ),
        MailKind::Verification => (
            "Confirm your email address for flowstore",
            format!(
                "To confirm that this address is yours, open this link within a day:\n\n{}\n\n\
                 Or send POST /api/v1/email-verifications/confirm with {{\"token\": \
                 \"{token}\"}}.\n\nIf you did not ask for it, ignore this message.\n",
                config.link("verify-email", token)
            ),
        ),
    };
    let from: Mailbox = config.from.parse().map_err(|e| format!("sender: {e}"))?;
    let to: Mailbox = to.parse().map_err(|e| format!("recipient: {e}"))?;
    Message::builder()
        .from(from)
        .to(to)
        .subject(subject)
        .header(ContentType::TEXT_PLAIN)
        .body(body)
        .map_err(|e| format!("message: {e}"))
}

async fn send(config: &MailConfig, kind: MailKind, to: &str, token: &str) -> Result<(), String> {
    let message = compose(config, kind, to, token)?;
    let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(&config.smtp_url)
        .map_err(|e| format!("SMTP URL: {e}"))?
        .timeout(Some(SEND_TIMEOUT))
        .build();
    transport
        .send(message)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Sends a message with `token` to `to` on a task of its own, when mail is
/// configured; call it after the token's transaction committed. Returns at once.
pub(crate) fn send_later(state: &AppState, kind: MailKind, to: String, token: String) {
    let Some(config) = state.config().mail.clone() else {
        return;
    };
    let state = state.clone();
    tokio::spawn(async move {
        match send(&config, kind, &to, &token).await {
            Ok(()) => {
                state.metrics().mail_sent.fetch_add(1, Ordering::Relaxed);
            }
            Err(error) => {
                state.metrics().mail_failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%error, ?kind, "mail could not be sent");
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> MailConfig {
        MailConfig {
            smtp_url: "smtp://mailer:s3cret@127.0.0.1:2525".into(),
            from: "Flowstore <flowstore@example.com>".into(),
            public_url: "https://flowstore.example.com/".into(),
        }
    }

    #[test]
    fn settings_are_checked_and_the_password_is_never_printed() {
        assert_eq!(config().check(), Ok(()));
        assert!(!format!("{:?}", config()).contains("s3cret"));
        let bad = |f: fn(&mut MailConfig)| {
            let mut c = config();
            f(&mut c);
            c.check().unwrap_err().0
        };
        assert_eq!(bad(|c| c.smtp_url = "imap://x".into()), "smtp_url");
        assert_eq!(bad(|c| c.from = "not an address".into()), "mail_from");
        assert_eq!(
            bad(|c| c.public_url = "flowstore.example.com".into()),
            "public_url"
        );
    }

    /// The message as a reader sees it: quoted-printable soft breaks joined, `=3D`
    /// back to `=`.
    fn read(m: &Message) -> String {
        String::from_utf8(m.formatted())
            .unwrap()
            .replace("=\r\n", "")
            .replace("=3D", "=")
    }

    #[test]
    fn messages_carry_the_link_and_the_token() {
        let m = compose(&config(), MailKind::PasswordReset, "ada@x.io", "T0KEN").unwrap();
        let text = read(&m);
        assert!(text.contains("To: ada@x.io"), "{text}");
        assert!(
            text.contains("https://flowstore.example.com/#/reset-password?token=T0KEN"),
            "{text}"
        );
        let m = compose(&config(), MailKind::Verification, "ada@x.io", "T0KEN").unwrap();
        let text = read(&m);
        assert!(text.contains("/#/verify-email?token=T0KEN"), "{text}");
    }
}
