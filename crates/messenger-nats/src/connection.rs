//! The connection to the cluster and the JetStream objects this crate uses.

use std::time::{Duration, Instant};

use async_nats::jetstream::{self, stream};
use tokio::sync::watch;

use crate::config::{Credentials, NatsSettings};
use crate::subject::{
    BROADCAST_STREAM, HOST_SUBJECT_PREFIX, STREAM, USER_STREAM, USER_SUBJECT_PREFIX,
    WORKGROUP_SUBJECT_PREFIX,
};

/// How long connecting to a server may take before the next is tried.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a JetStream request (publish acknowledgement, key-value operation) may take: a
/// quorum write on a healthy cluster takes milliseconds, and a leader election a few seconds.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// The window in which JetStream drops a retried message with the same id (shortened to the
/// retention when that is shorter, as JetStream requires).
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(2 * 60);
/// How long a broadcast is kept: a host that was restarting or briefly cut off still gets the
/// announcements of the last hour when it comes back, and nobody is shown one much later than
/// it was meant (shared/DESIGN.md's `MESSENGER_BCAST`).
pub const BROADCAST_RETENTION: Duration = Duration::from_secs(60 * 60);
/// Largest message JetStream accepts into the stream, in bytes: the longest text with its
/// names and JSON framing, with room to spare (see [`crate::wire::MAX_PAYLOAD`]).
pub const STREAM_MAX_MESSAGE_SIZE: i32 = 16 * 1024;

/// How long an operation waits for a lost connection to come back before it fails. When one
/// member dies the client reconnects to another within milliseconds, so a send during a
/// fail-over waits; a cluster still unreachable after this long is down, and from then on
/// sends fail at once instead of hanging.
pub const RECONNECT_GRACE: Duration = Duration::from_secs(2);
/// How often a waiting operation looks at the connection again (the client's events may lag
/// its state by a moment).
const RECONNECT_POLL: Duration = Duration::from_millis(20);

/// The connection as the client's events report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    Up,
    DownSince(Instant),
}

/// A connection to the cluster.
#[derive(Debug, Clone)]
pub struct Nats {
    pub(crate) client: async_nats::Client,
    pub(crate) jetstream: jetstream::Context,
    pub(crate) settings: NatsSettings,
    link: watch::Receiver<Link>,
}

impl Nats {
    /// Connects to the cluster as a program that is not a host of the organisation (tools,
    /// tests). The client reconnects by itself afterwards.
    pub async fn connect(settings: NatsSettings) -> Result<Self, NatsError> {
        Self::connect_with(settings, None).await
    }

    /// Connects to the cluster as the host `host`: replies to its requests (JetStream's
    /// answers and the messages its consumers pull) come on subjects under
    /// [`crate::subject::host_inbox_prefix`], which an account can let this host alone
    /// subscribe to (see [`crate::permissions`]).
    pub async fn connect_host(
        settings: NatsSettings,
        host: &crate::subject::EncodedName,
    ) -> Result<Self, NatsError> {
        Self::connect_with(settings, Some(crate::subject::host_inbox_prefix(host))).await
    }

    async fn connect_with(
        settings: NatsSettings,
        inbox_prefix: Option<String>,
    ) -> Result<Self, NatsError> {
        let (link_tx, link) = watch::channel(Link::Up);
        let mut options = async_nats::ConnectOptions::new()
            .event_callback(move |event| {
                match event {
                    async_nats::Event::Connected => {
                        link_tx.send_replace(Link::Up);
                    }
                    async_nats::Event::Disconnected => {
                        link_tx.send_if_modified(|link| {
                            let up = *link == Link::Up;
                            if up {
                                *link = Link::DownSince(Instant::now());
                            }
                            up
                        });
                    }
                    _ => {}
                }
                std::future::ready(())
            })
            .connection_timeout(CONNECT_TIMEOUT)
            .request_timeout(Some(REQUEST_TIMEOUT))
            .name("messengerd");
        if let Some(prefix) = inbox_prefix {
            options = options.custom_inbox_prefix(prefix);
        }
        match &settings.credentials {
            Credentials::None => {}
            Credentials::File(path) => {
                options = options
                    .credentials_file(path)
                    .await
                    .map_err(|e| NatsError::Credentials(e.to_string()))?;
            }
            Credentials::Token(token) => options = options.token(token.clone()),
            Credentials::UserPassword { user, password } => {
                options = options.user_and_password(user.clone(), password.clone())
            }
        }
        if let Some(ca) = &settings.tls.ca {
            options = options.add_root_certificates(ca.clone());
        }
        if let Some((cert, key)) = &settings.tls.client {
            options = options.add_client_certificate(cert.clone(), key.clone());
        }
        if settings.tls.is_required() {
            options = options.require_tls(true);
        }
        let servers = settings
            .servers
            .iter()
            .map(|s| s.parse::<async_nats::ServerAddr>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| NatsError::Connect(e.to_string()))?;
        let client = options
            .connect(servers)
            .await
            .map_err(|e| NatsError::Connect(e.to_string()))?;
        let mut jetstream = jetstream::new(client.clone());
        jetstream.set_timeout(REQUEST_TIMEOUT);
        Ok(Self {
            client,
            jetstream,
            settings,
            link,
        })
    }

    /// The settings this connection was made with.
    pub fn settings(&self) -> &NatsSettings {
        &self.settings
    }

    /// The client, for core NATS operations this crate does not wrap.
    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }

    /// The JetStream context, for operations this crate does not wrap.
    pub fn jetstream(&self) -> &jetstream::Context {
        &self.jetstream
    }

    /// Whether the client is connected now (it reconnects by itself when not).
    pub fn is_connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    /// Whether operations may be tried now: connected, or disconnected for less than
    /// [`RECONNECT_GRACE`] (a fail-over in progress). Cheap, no I/O.
    pub fn is_usable(&self) -> bool {
        if self.is_connected() {
            return true;
        }
        match *self.link.borrow() {
            // The client's event has not arrived yet: it has only just lost the connection.
            Link::Up => true,
            Link::DownSince(since) => since.elapsed() < RECONNECT_GRACE,
        }
    }

    /// Waits until the client is connected, at most until it has been disconnected for
    /// [`RECONNECT_GRACE`]; `false` when it is not connected by then (at once when the
    /// cluster has been unreachable for longer).
    pub async fn ready(&self) -> bool {
        let mut link = self.link.clone();
        let latest = Instant::now() + RECONNECT_GRACE;
        loop {
            if self.is_connected() {
                return true;
            }
            let deadline = match *link.borrow_and_update() {
                Link::Up => latest,
                Link::DownSince(since) => (since + RECONNECT_GRACE).min(latest),
            };
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            // Either a change of the link or the poll interval, whichever comes first; the
            // poll interval alone once the client (and its events) are gone.
            let pause = left.min(RECONNECT_POLL);
            if let Ok(Err(_)) = tokio::time::timeout(pause, link.changed()).await {
                tokio::time::sleep(pause).await;
            }
        }
    }

    /// The message stream, created with this crate's configuration if it does not exist, and
    /// brought to it (subjects, retention) if it was created with another.
    pub async fn stream(&self) -> Result<stream::Stream, NatsError> {
        self.ensure_stream(stream::Config {
            name: STREAM.to_owned(),
            subjects: vec![format!("{HOST_SUBJECT_PREFIX}*")],
            max_age: self.settings.retention,
            duplicate_window: DUPLICATE_WINDOW.min(self.settings.retention),
            ..self.stream_defaults()
        })
        .await
    }

    /// The stream of user queues (`messenger.user.*`), with the same retention as
    /// [`Nats::stream`]; created or brought to this configuration.
    pub async fn user_stream(&self) -> Result<stream::Stream, NatsError> {
        let config = stream::Config {
            name: USER_STREAM.to_owned(),
            subjects: vec![format!("{USER_SUBJECT_PREFIX}*")],
            max_age: self.settings.retention,
            duplicate_window: DUPLICATE_WINDOW.min(self.settings.retention),
            ..self.stream_defaults()
        };
        match self.ensure_stream(config.clone()).await {
            Ok(stream) => Ok(stream),
            // A message stream from before user queues had a stream of their own still
            // claims their subjects: bring it to its configuration first.
            Err(_) => {
                self.stream().await?;
                self.ensure_stream(config).await
            }
        }
    }

    /// The broadcast stream (`messenger.workgroup.*`), kept for [`BROADCAST_RETENTION`]; like
    /// [`Nats::stream`], created or brought to this configuration.
    pub async fn broadcast_stream(&self) -> Result<stream::Stream, NatsError> {
        self.ensure_stream(stream::Config {
            name: BROADCAST_STREAM.to_owned(),
            subjects: vec![format!("{WORKGROUP_SUBJECT_PREFIX}*")],
            max_age: BROADCAST_RETENTION,
            duplicate_window: DUPLICATE_WINDOW.min(BROADCAST_RETENTION),
            ..self.stream_defaults()
        })
        .await
    }

    /// What every stream of this crate has in common.
    fn stream_defaults(&self) -> stream::Config {
        stream::Config {
            retention: stream::RetentionPolicy::Limits,
            storage: stream::StorageType::File,
            max_message_size: STREAM_MAX_MESSAGE_SIZE,
            num_replicas: self.settings.replicas,
            ..Default::default()
        }
    }

    async fn ensure_stream(&self, config: stream::Config) -> Result<stream::Stream, NatsError> {
        let js = |e: &dyn std::fmt::Display| NatsError::JetStream(e.to_string());
        let stream = self
            .jetstream
            .get_or_create_stream(config.clone())
            .await
            .map_err(|e| js(&e))?;
        let current = &stream.cached_info().config;
        if current.subjects != config.subjects
            || current.max_age != config.max_age
            || current.duplicate_window != config.duplicate_window
        {
            tracing::info!(
                stream = %config.name,
                retention_secs = config.max_age.as_secs(),
                "updating a stream's subjects and retention"
            );
            let mut updated = current.clone();
            updated.subjects = config.subjects;
            updated.max_age = config.max_age;
            updated.duplicate_window = config.duplicate_window;
            match self.jetstream.update_stream(updated).await {
                Ok(_) => {
                    return self
                        .jetstream
                        .get_stream(&config.name)
                        .await
                        .map_err(|e| js(&e))
                }
                // An account that may not change the stream (the cluster's administrator
                // manages it) keeps working with the stream as it is.
                Err(e) => tracing::warn!(
                    stream = %config.name,
                    error = %e,
                    "cannot update a stream; using it as it is configured"
                ),
            }
        }
        Ok(stream)
    }
}

/// Why talking to NATS failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NatsError {
    /// The credentials file could not be read.
    #[error("cannot read the NATS credentials: {0}")]
    Credentials(String),
    /// No server could be reached.
    #[error("cannot connect to NATS: {0}")]
    Connect(String),
    /// The client is not connected now.
    #[error("the organisation's message network (NATS) is unreachable")]
    Unreachable,
    /// A JetStream request failed.
    #[error("NATS JetStream: {0}")]
    JetStream(String),
}
