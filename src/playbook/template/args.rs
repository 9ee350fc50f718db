//! The small conversions every filter module shares: a template value to JSON, an error in
//! the template engine's kind, and a call's positional arguments split from its keywords.

use super::*;

pub(super) fn j(v: &JValue) -> Result<Value, JError> {
    to_json(v).map_err(|m| JError::new(ErrorKind::InvalidOperation, m))
}

pub(super) fn jerr(msg: impl Into<String>) -> JError {
    JError::new(ErrorKind::InvalidOperation, msg.into())
}

pub(super) fn split_kwargs(args: &[JValue]) -> (Vec<JValue>, Kwargs) {
    let mut pos = Vec::new();
    let mut kw = Kwargs::from_iter(std::iter::empty::<(&str, JValue)>());
    for a in args {
        if a.is_kwargs() {
            kw = Kwargs::try_from(a.clone()).unwrap_or(kw);
        } else {
            pos.push(a.clone());
        }
    }
    (pos, kw)
}
