//! A Python `datetime.datetime` in local time, for the template module's `template_run_date`
//! and `template_mtime`: prints as `str()` does (`2026-12-07 15:18:09.377311`), has the
//! attributes `year` … `microsecond` and the methods `strftime` and `isoformat`.

use minijinja::value::{Object, ObjectRepr, Value as JValue};
use minijinja::{Error as JError, ErrorKind, State};
use std::fmt;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

pub struct PyDateTime {
    tm: Tm,
    micros: u32,
}

/// The broken-down time; its `tm_zone` points into the C library's static time zone names.
struct Tm(libc::tm);
// SAFETY: the only pointer, `tm_zone`, refers to immutable static data of the C library.
unsafe impl Send for Tm {}
unsafe impl Sync for Tm {}

impl fmt::Debug for PyDateTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "datetime({self})")
    }
}

impl PyDateTime {
    /// The local time of `t` (the controller's time zone).
    pub fn local(t: SystemTime) -> PyDateTime {
        let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
        let secs = d.as_secs() as libc::time_t;
        // SAFETY: localtime_r writes the broken-down time into `tm` and reads only `secs`.
        let mut tm: libc::tm = unsafe { std::mem::zeroed() };
        unsafe { libc::localtime_r(&secs, &mut tm) };
        PyDateTime {
            tm: Tm(tm),
            micros: d.subsec_micros(),
        }
    }

    pub fn value(t: SystemTime) -> JValue {
        JValue::from_object(PyDateTime::local(t))
    }

    fn strftime(&self, fmt: &str) -> Result<String, JError> {
        let cfmt = std::ffi::CString::new(fmt.replace("%f", &format!("{:06}", self.micros)))
            .map_err(|_| JError::new(ErrorKind::InvalidOperation, "strftime: NUL in format"))?;
        let mut buf = vec![0u8; 256 + fmt.len() * 16];
        // SAFETY: `buf` is writable for its length, `cfmt` is NUL-terminated, `tm` is valid.
        let n = unsafe {
            libc::strftime(
                buf.as_mut_ptr() as *mut libc::c_char,
                buf.len(),
                cfmt.as_ptr(),
                &self.tm.0,
            )
        };
        buf.truncate(n);
        Ok(String::from_utf8_lossy(&buf).into_owned())
    }

    fn date_time(&self, sep: char) -> String {
        let t = &self.tm.0;
        let mut s = format!(
            "{:04}-{:02}-{:02}{sep}{:02}:{:02}:{:02}",
            t.tm_year + 1900,
            t.tm_mon + 1,
            t.tm_mday,
            t.tm_hour,
            t.tm_min,
            t.tm_sec
        );
        if self.micros != 0 {
            s.push_str(&format!(".{:06}", self.micros));
        }
        s
    }
}

impl fmt::Display for PyDateTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.date_time(' '))
    }
}

impl Object for PyDateTime {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Plain
    }

    fn get_value(self: &Arc<Self>, key: &JValue) -> Option<JValue> {
        let t = &self.tm.0;
        Some(JValue::from(match key.as_str()? {
            "year" => t.tm_year + 1900,
            "month" => t.tm_mon + 1,
            "day" => t.tm_mday,
            "hour" => t.tm_hour,
            "minute" => t.tm_min,
            "second" => t.tm_sec,
            "microsecond" => self.micros as i32,
            _ => return None,
        }))
    }

    fn call_method(
        self: &Arc<Self>,
        _state: &mut State<'_, '_>,
        method: &str,
        args: &[JValue],
    ) -> Result<JValue, JError> {
        match (method, args) {
            ("strftime", [f]) => Ok(JValue::from(self.strftime(f.as_str().unwrap_or(""))?)),
            ("isoformat", []) => Ok(JValue::from(self.date_time('T'))),
            _ => Err(JError::new(
                ErrorKind::UnknownMethod,
                format!(
                    "datetime has no method {method} taking {} arguments",
                    args.len()
                ),
            )),
        }
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result
    where
        Self: Sized + 'static,
    {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn prints_like_python() {
        let t = UNIX_EPOCH + Duration::from_micros(1_765_120_689_377_311);
        let d = PyDateTime::local(t);
        let s = d.to_string();
        assert_eq!(s.len(), "2025-12-07 15:18:09.377311".len(), "{s}");
        assert!(s.ends_with(":09.377311"), "{s}");
        assert_eq!(d.strftime("%S.%f").unwrap(), "09.377311");
        let whole = PyDateTime::local(UNIX_EPOCH + Duration::from_secs(1_765_120_689));
        assert!(whole.to_string().ends_with(":09"), "{whole}");
    }
}
