//! `.npy` reading and writing for little-endian f32 C-order arrays: the
//! input/output format of `grimc run`.
//!
//! Hand-written because the subset is tiny (one dtype, one layout) and the
//! errors must say exactly what is wrong with the user's file.

use std::path::Path;

use crate::error::ModelError;
use crate::fsutil::write_atomic;
use crate::tensor::{checked_numel, Tensor};

const MAGIC: &[u8] = b"\x93NUMPY";

fn npy_err(path: &Path, message: impl Into<String>) -> ModelError {
    ModelError::Npy {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// A value of the header dict.
#[derive(Debug, PartialEq)]
enum PyValue {
    Str(String),
    Bool(bool),
    Tuple(Vec<usize>),
}

/// A tiny parser for the Python dict literal numpy writes as the header.
struct HeaderParser<'a> {
    s: &'a [u8],
    pos: usize,
}

impl HeaderParser<'_> {
    fn ws(&mut self) {
        while self.pos < self.s.len() && self.s[self.pos].is_ascii_whitespace() {
            self.pos += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        self.ws();
        if self.s.get(self.pos) == Some(&c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: u8) -> Result<(), String> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(format!(
                "header: expected '{}' at offset {}",
                c as char, self.pos
            ))
        }
    }

    fn string(&mut self) -> Result<String, String> {
        self.ws();
        let q = match self.s.get(self.pos) {
            Some(&q @ (b'\'' | b'"')) => q,
            _ => {
                return Err(format!(
                    "header: expected a quoted string at offset {}",
                    self.pos
                ))
            }
        };
        let start = self.pos + 1;
        let len = self.s[start..]
            .iter()
            .position(|&c| c == q)
            .ok_or("header: unterminated string")?;
        self.pos = start + len + 1;
        Ok(String::from_utf8_lossy(&self.s[start..start + len]).into_owned())
    }

    fn value(&mut self) -> Result<PyValue, String> {
        self.ws();
        let rest = &self.s[self.pos..];
        if rest.starts_with(b"True") {
            self.pos += 4;
            Ok(PyValue::Bool(true))
        } else if rest.starts_with(b"False") {
            self.pos += 5;
            Ok(PyValue::Bool(false))
        } else if rest.starts_with(b"(") {
            self.pos += 1;
            let mut dims = Vec::new();
            loop {
                if self.eat(b')') {
                    break;
                }
                self.ws();
                let start = self.pos;
                while self.pos < self.s.len() && self.s[self.pos].is_ascii_digit() {
                    self.pos += 1;
                }
                // numpy 1.x may write "3L" on Python 2; accept the suffix.
                let digits = std::str::from_utf8(&self.s[start..self.pos]).unwrap_or("");
                let d: usize = digits
                    .parse()
                    .map_err(|_| format!("header: bad shape dimension at offset {start}"))?;
                dims.push(d);
                let _ = self.eat(b'L');
                if !self.eat(b',') {
                    self.expect(b')')?;
                    break;
                }
            }
            Ok(PyValue::Tuple(dims))
        } else {
            Ok(PyValue::Str(self.string()?))
        }
    }

    fn dict(&mut self) -> Result<Vec<(String, PyValue)>, String> {
        self.expect(b'{')?;
        let mut out = Vec::new();
        loop {
            if self.eat(b'}') {
                break;
            }
            let k = self.string()?;
            self.expect(b':')?;
            let v = self.value()?;
            out.push((k, v));
            if !self.eat(b',') {
                self.expect(b'}')?;
                break;
            }
        }
        self.ws();
        if self.pos != self.s.len() {
            return Err(format!(
                "header: unexpected text after the dict at offset {}",
                self.pos
            ));
        }
        Ok(out)
    }
}

/// Parses a header dict; returns the shape of a `<f4` array and whether it
/// is stored in Fortran (column-major) order.
fn parse_header(text: &[u8]) -> Result<(Vec<usize>, bool), String> {
    let entries = HeaderParser { s: text, pos: 0 }.dict()?;
    let (mut descr, mut fortran, mut shape) = (None, None, None);
    for (k, v) in entries {
        match (k.as_str(), v) {
            ("descr", PyValue::Str(s)) => descr = Some(s),
            ("fortran_order", PyValue::Bool(b)) => fortran = Some(b),
            ("shape", PyValue::Tuple(t)) => shape = Some(t),
            (k @ ("descr" | "fortran_order" | "shape"), v) => {
                return Err(format!("header: '{k}' has an unexpected value {v:?}"))
            }
            (k, _) => return Err(format!("header: unknown key '{k}'")),
        }
    }
    let descr = descr.ok_or("header: missing 'descr'")?;
    if descr != "<f4" {
        return Err(format!(
            "dtype '{descr}' is not supported (grim reads little-endian float32, '<f4')"
        ));
    }
    let fortran = fortran.ok_or("header: missing 'fortran_order'")?;
    Ok((shape.ok_or("header: missing 'shape'")?, fortran))
}

/// Reads a little-endian f32 `.npy` file (C or Fortran order; format version 1.0, 2.0 or 3.0).
pub fn read_npy(path: &Path) -> Result<Tensor, ModelError> {
    let bytes = std::fs::read(path).map_err(|e| ModelError::io(path, e))?;
    decode_npy(&bytes).map_err(|m| npy_err(path, m))
}

fn decode_npy(bytes: &[u8]) -> Result<Tensor, String> {
    if bytes.len() < 10 || !bytes.starts_with(MAGIC) {
        return Err("not a .npy file (missing the \\x93NUMPY magic)".into());
    }
    let (major, minor) = (bytes[6], bytes[7]);
    let (hlen, hstart) = match major {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 => {
            if bytes.len() < 12 {
                return Err("truncated header".into());
            }
            (
                u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
                12,
            )
        }
        _ => return Err(format!("unsupported format version {major}.{minor}")),
    };
    let header = bytes
        .get(hstart..hstart + hlen)
        .ok_or_else(|| format!("truncated header: expected {hlen} header bytes"))?;
    let (shape, fortran) = parse_header(header)?;
    let n = checked_numel(&shape).ok_or_else(|| format!("shape {shape:?} is too large"))?;
    let data = &bytes[hstart + hlen..];
    let want = n
        .checked_mul(4)
        .ok_or_else(|| format!("shape {shape:?} is too large"))?;
    if data.len() < want {
        return Err(format!(
            "truncated: shape {shape:?} needs {want} data bytes, found {}",
            data.len()
        ));
    }
    if data.len() > want {
        return Err(format!(
            "{} unexpected bytes after the {want} data bytes of shape {shape:?}",
            data.len() - want
        ));
    }
    let data: Vec<f32> = data
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let data = if fortran {
        from_fortran_order(&data, &shape)
    } else {
        data
    };
    Ok(Tensor { shape, data })
}

/// Row-major data from column-major `data` of `shape` (numpy writes a
/// transposed view with `fortran_order: True`).
fn from_fortran_order(data: &[f32], shape: &[usize]) -> Vec<f32> {
    let mut strides = vec![1; shape.len()];
    for d in 1..shape.len() {
        strides[d] = strides[d - 1] * shape[d - 1];
    }
    let mut out = Vec::with_capacity(data.len());
    let mut index = vec![0; shape.len()];
    for _ in 0..data.len() {
        out.push(
            data[index
                .iter()
                .zip(&strides)
                .map(|(i, s)| i * s)
                .sum::<usize>()],
        );
        for d in (0..shape.len()).rev() {
            index[d] += 1;
            if index[d] < shape[d] {
                break;
            }
            index[d] = 0;
        }
    }
    out
}

/// Encodes a tensor as `.npy` bytes (version 1.0, or 2.0 for huge headers).
pub fn encode_npy(t: &Tensor) -> Vec<u8> {
    let dims: Vec<String> = t.shape.iter().map(|d| d.to_string()).collect();
    let shape = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}");
    // numpy aligns the data to 64 bytes; the header ends with '\n'.
    let v1 = header.len() + 11 <= u16::MAX as usize;
    let prefix = if v1 { 10 } else { 12 };
    let total = (prefix + header.len() + 1).div_ceil(64) * 64;
    while prefix + header.len() + 1 < total {
        header.push(' ');
    }
    header.push('\n');
    let mut out = Vec::with_capacity(total + 4 * t.data.len());
    out.extend_from_slice(MAGIC);
    if v1 {
        out.extend_from_slice(&[1, 0]);
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    } else {
        out.extend_from_slice(&[2, 0]);
        out.extend_from_slice(&(header.len() as u32).to_le_bytes());
    }
    out.extend_from_slice(header.as_bytes());
    for v in &t.data {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// Writes `t` as a `.npy` file, atomically.
pub fn write_npy(path: &Path, t: &Tensor) -> Result<(), ModelError> {
    if t.data.len() != t.numel() {
        return Err(npy_err(
            path,
            format!(
                "tensor shape {:?} does not match its {} values",
                t.shape,
                t.data.len()
            ),
        ));
    }
    write_atomic(path, &encode_npy(t))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_header(version: u8, header: &str, data: &[f32]) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&[version, 0]);
        if version == 1 {
            out.extend_from_slice(&(header.len() as u16).to_le_bytes());
        } else {
            out.extend_from_slice(&(header.len() as u32).to_le_bytes());
        }
        out.extend_from_slice(header.as_bytes());
        for v in data {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out
    }

    #[test]
    fn round_trip_and_alignment() {
        let dir = tempfile::tempdir().unwrap();
        for shape in [vec![2, 3], vec![5], vec![], vec![0, 4], vec![1, 2, 1, 2]] {
            let n: usize = shape.iter().product();
            let t = Tensor::new(shape.clone(), (0..n).map(|i| i as f32 - 1.5).collect()).unwrap();
            let p = dir.path().join("t.npy");
            write_npy(&p, &t).unwrap();
            let bytes = std::fs::read(&p).unwrap();
            assert_eq!((bytes.len() - 4 * n) % 64, 0);
            assert_eq!(read_npy(&p).unwrap(), t);
        }
    }

    #[test]
    fn numpy_headers_parse() {
        let b = with_header(
            1,
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }          \n",
            &[1., 2., 3., 4., 5., 6.],
        );
        let t = decode_npy(&b).unwrap();
        assert_eq!((t.shape, t.data[5]), (vec![2, 3], 6.));
        let b = with_header(
            2,
            "{\"shape\": (3,), \"fortran_order\": False, \"descr\": \"<f4\"}\n",
            &[1., 2., 3.],
        );
        assert_eq!(decode_npy(&b).unwrap().shape, vec![3]);
        let b = with_header(
            1,
            "{'descr': '<f4', 'fortran_order': False, 'shape': (), }\n",
            &[7.],
        );
        assert_eq!(decode_npy(&b).unwrap().data, vec![7.]);
        // Fortran order: numpy's np.save(np.arange(6.).reshape(2, 3).T) is
        // the [3, 2] array [[0, 3], [1, 4], [2, 5]] stored as 0..6.
        let b = with_header(
            1,
            "{'descr': '<f4', 'fortran_order': True, 'shape': (3, 2), }\n",
            &[0., 1., 2., 3., 4., 5.],
        );
        let t = decode_npy(&b).unwrap();
        assert_eq!(
            (t.shape, t.data),
            (vec![3, 2], vec![0., 3., 1., 4., 2., 5.])
        );
    }

    #[test]
    fn bad_files_say_what_is_wrong() {
        let h = |d: &str, f: &str| {
            format!("{{'descr': '{d}', 'fortran_order': {f}, 'shape': (2,), }}\n")
        };
        let e = decode_npy(&with_header(1, &h("<f8", "False"), &[0.; 4])).unwrap_err();
        assert!(e.contains("'<f8'"), "{e}");
        let e = decode_npy(&with_header(1, &h("<f4", "False"), &[0.; 1])).unwrap_err();
        assert!(
            e.contains("truncated") && e.contains("8") && e.contains("found 4"),
            "{e}"
        );
        let e = decode_npy(&with_header(1, &h("<f4", "False"), &[0.; 3])).unwrap_err();
        assert!(e.contains("unexpected bytes"), "{e}");
        assert!(decode_npy(b"PK\x03\x04 not npy")
            .unwrap_err()
            .contains("magic"));
        let e = decode_npy(&with_header(1, "{'descr': '<f4'", &[])).unwrap_err();
        assert!(e.contains("header"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.npy");
        std::fs::write(&p, &with_header(1, &h("<f8", "False"), &[0.; 4])[..20]).unwrap();
        let e = read_npy(&p).unwrap_err().to_string();
        assert!(e.contains("x.npy"), "{e}");
    }
}
