//! A small SMTP receiver on 127.0.0.1 (port 0) for the tests of mail: it speaks
//! enough of the protocol for a client that sends plain messages (EHLO/HELO, MAIL,
//! RCPT, DATA, RSET, NOOP, QUIT) and hands every message it accepts to the test.
//! [`SmtpSink::refusing`] answers every message with a permanent failure instead.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// A message the receiver accepted.
#[derive(Clone, Debug)]
pub struct Mail {
    /// The envelope sender (`MAIL FROM`).
    pub from: String,
    /// The envelope recipients (`RCPT TO`).
    pub to: Vec<String>,
    /// The message as sent (headers and body), dot-unstuffed.
    pub data: String,
}

impl Mail {
    /// The message as a reader sees it: headers as sent, a quoted-printable body
    /// decoded (soft line breaks joined, `=XX` turned back into their bytes).
    pub fn text(&self) -> String {
        let (head, body) = self
            .data
            .split_once("\r\n\r\n")
            .unwrap_or((self.data.as_str(), ""));
        if !head
            .to_ascii_lowercase()
            .contains("content-transfer-encoding: quoted-printable")
        {
            return self.data.clone();
        }
        let joined = body.replace("=\r\n", "");
        let bytes = joined.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok());
            match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
                (b'=', Some(b)) => {
                    out.push(b);
                    i += 3;
                }
                (c, _) => {
                    out.push(c);
                    i += 1;
                }
            }
        }
        format!("{head}\r\n\r\n{}", String::from_utf8_lossy(&out))
    }

    /// The token of the first `token=` in the message (letters, digits and `-`).
    pub fn token(&self) -> String {
        let text = self.text();
        let at = text.find("token=").expect("the message carries a token") + 6;
        text[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect()
    }
}

/// The receiver: its address, and the messages it accepted, in order.
pub struct SmtpSink {
    /// Where it listens.
    pub addr: SocketAddr,
    mail: mpsc::UnboundedReceiver<Mail>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl SmtpSink {
    /// A receiver that accepts every message.
    pub async fn start() -> SmtpSink {
        Self::spawn(true).await
    }

    /// A receiver that refuses every message (554 to `MAIL FROM`).
    pub async fn refusing() -> SmtpSink {
        Self::spawn(false).await
    }

    async fn spawn(accept: bool) -> SmtpSink {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, mail) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                tokio::spawn(session(conn, tx.clone(), accept));
            }
        });
        SmtpSink { addr, mail, task }
    }

    /// Its URL, `smtp://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("smtp://{}", self.addr)
    }

    /// The next message, waiting up to 10 s for it.
    pub async fn next(&mut self) -> Mail {
        tokio::time::timeout(Duration::from_secs(10), self.mail.recv())
            .await
            .expect("a message arrives within 10 s")
            .expect("the receiver runs")
    }

    /// The next message if one arrives within `wait`.
    pub async fn next_within(&mut self, wait: Duration) -> Option<Mail> {
        tokio::time::timeout(wait, self.mail.recv())
            .await
            .ok()
            .flatten()
    }
}

/// One client's conversation.
async fn session(conn: TcpStream, out: mpsc::UnboundedSender<Mail>, accept: bool) {
    let (read, mut write) = conn.into_split();
    let mut lines = BufReader::new(read);
    if write
        .write_all(b"220 localhost test SMTP\r\n")
        .await
        .is_err()
    {
        return;
    }
    let (mut from, mut to) = (String::new(), Vec::new());
    loop {
        let mut line = String::new();
        match lines.read_line(&mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let command = line.trim_end().to_string();
        let upper = command.to_ascii_uppercase();
        let answer = if upper.starts_with("EHLO") || upper.starts_with("HELO") {
            "250 localhost\r\n"
        } else if upper.starts_with("MAIL FROM:") {
            if !accept {
                "554 5.7.1 refused for the test\r\n"
            } else {
                from = address(&command["MAIL FROM:".len()..]);
                to.clear();
                "250 2.1.0 OK\r\n"
            }
        } else if upper.starts_with("RCPT TO:") {
            to.push(address(&command["RCPT TO:".len()..]));
            "250 2.1.5 OK\r\n"
        } else if upper == "DATA" {
            if write
                .write_all(b"354 end with <CRLF>.<CRLF>\r\n")
                .await
                .is_err()
            {
                return;
            }
            let mut data = String::new();
            loop {
                let mut l = String::new();
                match lines.read_line(&mut l).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
                if l == ".\r\n" || l == ".\n" {
                    break;
                }
                data.push_str(l.strip_prefix('.').unwrap_or(&l));
            }
            let _ = out.send(Mail {
                from: from.clone(),
                to: std::mem::take(&mut to),
                data,
            });
            "250 2.0.0 queued\r\n"
        } else if upper == "RSET" || upper == "NOOP" {
            "250 2.0.0 OK\r\n"
        } else if upper == "QUIT" {
            let _ = write.write_all(b"221 2.0.0 bye\r\n").await;
            return;
        } else {
            "502 5.5.2 not implemented\r\n"
        };
        if write.write_all(answer.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// The address of `<a@b> [parameters]`.
fn address(text: &str) -> String {
    let text = text.trim();
    let text = text.strip_prefix('<').unwrap_or(text);
    text.split('>').next().unwrap_or_default().to_string()
}
