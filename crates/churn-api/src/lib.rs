//! The wire contract of `churn`: the `churn.v1` protocol compiled once from `proto/`, the
//! conversions between its messages and `churn-core` values, and a client channel.
//!
//! The server (`churn-serve`), the `churn client` and load generator of `churn-cli`, and any other
//! client build on this crate alone, so a client never links the server's storage or HTTP stack.
//! It must not know storage or servers.
//!
//! ```
//! use churn_api::{convert, proto};
//! use churn_core::{Profile, RawValue};
//!
//! let mut profile = Profile::new();
//! profile.insert("tenure".into(), RawValue::Number(2.0));
//! let message: proto::Profile = convert::profile_to_proto("c-1", &profile);
//! let (customer_id, back) = convert::profile_from_proto(Some(message)).unwrap();
//! assert_eq!((customer_id.as_str(), back), ("c-1", profile));
//! ```

#![warn(missing_docs)]

pub mod client;
pub mod convert;
pub mod error;

pub use error::{ApiError, Result};

/// The `churn.v1` protocol, generated from `proto/churn/v1/churn.proto`.
pub mod proto {
    #![allow(missing_docs, clippy::all, clippy::pedantic)]
    tonic::include_proto!("churn.v1");

    /// The encoded descriptors of `churn.v1`, for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("churn_v1_descriptor");
}
