//! The viewer's session as a library: logging in, pairing and the end-to-end connection
//! ([`session::connect`]), and the shell around [`protocol::viewer_session::ViewerSession`]
//! ([`session::run`]). The `fernhilfe-viewer` binary adds the window and the headless front
//! end; test programs reuse [`session::connect`] to play viewers that misbehave.

pub mod session;
pub mod snapshot;
