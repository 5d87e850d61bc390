//! A minimal, bounds-checked FlatBuffers reader: just tables, vectors and strings.
//!
//! Every read goes through `get` on the byte slice, so hostile offsets give `Error::Malformed`, never a panic.

use crate::Error;

fn bad(what: &str) -> Error {
    Error::Malformed(what.to_string())
}

fn bytes<const N: usize>(buf: &[u8], pos: usize) -> Result<[u8; N], Error> {
    let end = pos.checked_add(N).ok_or_else(|| bad("offset overflow"))?;
    let s = buf.get(pos..end).ok_or_else(|| bad("offset past end of file"))?;
    let mut out = [0u8; N];
    out.copy_from_slice(s);
    Ok(out)
}

pub(crate) fn read_u8(buf: &[u8], pos: usize) -> Result<u8, Error> {
    buf.get(pos).copied().ok_or_else(|| bad("offset past end of file"))
}
pub(crate) fn read_u16(buf: &[u8], pos: usize) -> Result<u16, Error> {
    Ok(u16::from_le_bytes(bytes(buf, pos)?))
}
pub(crate) fn read_u32(buf: &[u8], pos: usize) -> Result<u32, Error> {
    Ok(u32::from_le_bytes(bytes(buf, pos)?))
}
pub(crate) fn read_i32(buf: &[u8], pos: usize) -> Result<i32, Error> {
    Ok(i32::from_le_bytes(bytes(buf, pos)?))
}
pub(crate) fn read_u64(buf: &[u8], pos: usize) -> Result<u64, Error> {
    Ok(u64::from_le_bytes(bytes(buf, pos)?))
}

/// Follows a `uoffset_t` stored at `pos` (relative to `pos` itself).
fn follow(buf: &[u8], pos: usize) -> Result<usize, Error> {
    let off = read_u32(buf, pos)? as usize;
    let target = pos.checked_add(off).ok_or_else(|| bad("offset overflow"))?;
    if target >= buf.len() {
        return Err(bad("reference past end of file"));
    }
    Ok(target)
}

#[derive(Clone, Copy)]
pub(crate) struct Table<'a> {
    buf: &'a [u8],
    pos: usize,
    vtable: usize,
    vtable_len: usize,
}

impl<'a> Table<'a> {
    /// The root table of a FlatBuffer.
    pub(crate) fn root(buf: &'a [u8]) -> Result<Self, Error> {
        let pos = follow(buf, 0)?;
        Self::at(buf, pos)
    }

    fn at(buf: &'a [u8], pos: usize) -> Result<Self, Error> {
        let soff = read_i32(buf, pos)? as i64;
        let vtable = usize::try_from(pos as i64 - soff).map_err(|_| bad("vtable before start of file"))?;
        let vtable_len = read_u16(buf, vtable)? as usize;
        if vtable_len < 4
            || !vtable_len.is_multiple_of(2)
            || vtable.checked_add(vtable_len).is_none_or(|e| e > buf.len())
        {
            return Err(bad("bad vtable"));
        }
        Ok(Table { buf, pos, vtable, vtable_len })
    }

    /// Absolute position of field `id`, or None when the field is absent (default value).
    fn field(&self, id: usize) -> Result<Option<usize>, Error> {
        let slot = 4 + 2 * id;
        if slot + 2 > self.vtable_len {
            return Ok(None);
        }
        let off = read_u16(self.buf, self.vtable + slot)? as usize;
        if off == 0 { Ok(None) } else { Ok(Some(self.pos + off)) }
    }

    pub(crate) fn u8(&self, id: usize, default: u8) -> Result<u8, Error> {
        self.field(id)?.map_or(Ok(default), |p| read_u8(self.buf, p))
    }
    pub(crate) fn i8(&self, id: usize, default: i8) -> Result<i8, Error> {
        Ok(self.u8(id, default as u8)? as i8)
    }
    pub(crate) fn bool(&self, id: usize) -> Result<bool, Error> {
        Ok(self.u8(id, 0)? != 0)
    }
    pub(crate) fn i32(&self, id: usize, default: i32) -> Result<i32, Error> {
        self.field(id)?.map_or(Ok(default), |p| read_i32(self.buf, p))
    }
    pub(crate) fn u32(&self, id: usize, default: u32) -> Result<u32, Error> {
        self.field(id)?.map_or(Ok(default), |p| read_u32(self.buf, p))
    }
    pub(crate) fn u64(&self, id: usize, default: u64) -> Result<u64, Error> {
        self.field(id)?.map_or(Ok(default), |p| read_u64(self.buf, p))
    }

    pub(crate) fn table(&self, id: usize) -> Result<Option<Table<'a>>, Error> {
        match self.field(id)? {
            None => Ok(None),
            Some(p) => Ok(Some(Table::at(self.buf, follow(self.buf, p)?)?)),
        }
    }

    /// A vector field whose elements are `elem_size` bytes wide (4 for offsets to tables).
    pub(crate) fn vector(&self, id: usize, elem_size: usize) -> Result<Option<Vector<'a>>, Error> {
        match self.field(id)? {
            None => Ok(None),
            Some(p) => {
                let v = follow(self.buf, p)?;
                let len = read_u32(self.buf, v)? as usize;
                let start = v + 4;
                let end = len.checked_mul(elem_size).and_then(|n| n.checked_add(start));
                if end.is_none_or(|e| e > self.buf.len()) {
                    return Err(bad("vector past end of file"));
                }
                Ok(Some(Vector { buf: self.buf, start, len, elem_size }))
            }
        }
    }

    pub(crate) fn bytes(&self, id: usize) -> Result<Option<&'a [u8]>, Error> {
        Ok(self.vector(id, 1)?.map(|v| v.as_bytes()))
    }

    pub(crate) fn string(&self, id: usize) -> Result<Option<String>, Error> {
        Ok(self.bytes(id)?.map(|b| String::from_utf8_lossy(b).into_owned()))
    }

    pub(crate) fn i32_vec(&self, id: usize) -> Result<Vec<i32>, Error> {
        match self.vector(id, 4)? {
            None => Ok(Vec::new()),
            Some(v) => (0..v.len).map(|i| read_i32(self.buf, v.start + 4 * i)).collect(),
        }
    }

    pub(crate) fn tables(&self, id: usize) -> Result<Vec<Table<'a>>, Error> {
        match self.vector(id, 4)? {
            None => Ok(Vec::new()),
            Some(v) => (0..v.len).map(|i| Table::at(self.buf, follow(self.buf, v.start + 4 * i)?)).collect(),
        }
    }
}

#[derive(Clone, Copy)]
pub(crate) struct Vector<'a> {
    buf: &'a [u8],
    start: usize,
    len: usize,
    elem_size: usize,
}

impl<'a> Vector<'a> {
    fn as_bytes(&self) -> &'a [u8] {
        // Range checked in `Table::vector`.
        self.buf.get(self.start..self.start + self.len * self.elem_size).unwrap_or(&[])
    }
}
