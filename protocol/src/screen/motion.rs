//! Finding regions that moved, so the viewer copies them from its own screen instead of
//! receiving them again: a scrolled text (found here, from the pixels) and a dragged window
//! (the capture's hint, checked here against the pixels). A copy is only ever proposed for
//! rows whose pixels match exactly, so a wrong guess costs nothing but the search.

use super::update::CopyRect;
use super::{FrameView, Rect};
use std::collections::HashMap;

/// A copy must cover at least this many rows to be worth its bytes and the search.
pub const MIN_COPY_ROWS: usize = 8;
/// Rows whose content occurs more often than this in the old picture (blank lines, borders)
/// say nothing about where the content went.
const MAX_SAME_ROWS: usize = 4;

/// A fast, non-cryptographic hash of a row of pixels.
pub fn row_hash(bytes: &[u8]) -> u64 {
    const K: u64 = 0x100_0000_01b3;
    // Four independent lanes: one chain of multiplies would wait on each multiply's latency,
    // and the encoder hashes every changed tile of a film, 8 MB a frame.
    let mut lanes = [
        0xcbf2_9ce4_8422_2325u64,
        0x9e37_79b9_7f4a_7c15,
        0xc2b2_ae3d_27d4_eb4f,
        0x1656_67b1_9e37_79f9,
    ];
    let mut blocks = bytes.chunks_exact(32);
    for b in &mut blocks {
        for (lane, w) in lanes.iter_mut().zip(b.chunks_exact(8)) {
            let h = (*lane ^ u64::from_le_bytes(w.try_into().expect("8 bytes"))).wrapping_mul(K);
            *lane = h ^ (h >> 29);
        }
    }
    let mut h = lanes
        .iter()
        .fold(bytes.len() as u64, |h, l| (h ^ l).wrapping_mul(K));
    for b in blocks.remainder() {
        h = (h ^ *b as u64).wrapping_mul(K);
    }
    h ^ (h >> 32)
}

/// The vertical distance the content of `area` scrolled by, if the rows say so: each changed
/// row votes for where its content was in the old picture; the distance most votes agree on
/// wins.
pub fn find_scroll(old: &FrameView<'_>, new: &FrameView<'_>, area: Rect) -> Option<i32> {
    let (x, w) = (area.x as usize, area.w as usize);
    let rows = area.y as usize..area.bottom();
    let mut old_rows: HashMap<u64, Vec<usize>> = HashMap::with_capacity(rows.len());
    for y in rows.clone() {
        old_rows
            .entry(row_hash(old.row(x, y, w)))
            .or_default()
            .push(y);
    }
    let mut votes: HashMap<i32, usize> = HashMap::new();
    for y in rows {
        let row = new.row(x, y, w);
        if row == old.row(x, y, w) {
            continue;
        }
        if let Some(was) = old_rows.get(&row_hash(row)) {
            if was.len() <= MAX_SAME_ROWS {
                for &from in was {
                    *votes.entry(y as i32 - from as i32).or_default() += 1;
                }
            }
        }
    }
    votes
        .into_iter()
        .filter(|&(dy, n)| dy != 0 && n >= MIN_COPY_ROWS / 2)
        .max_by_key(|&(dy, n)| (n, -dy.abs()))
        .map(|(dy, _)| dy)
}

/// The longest run of rows of `area` whose content in `new` is the old picture's content
/// moved by (`dx`, `dy`), as a copy; `None` when no run is long enough or the copy would
/// change nothing.
pub fn verify_move(
    old: &FrameView<'_>,
    new: &FrameView<'_>,
    area: Rect,
    dx: i32,
    dy: i32,
) -> Option<CopyRect> {
    let (sw, sh) = (old.width as i32, old.height as i32);
    // Where both the destination and its source lie on the screen.
    let x0 = (area.x as i32).max(dx).max(0);
    let x1 = (area.right() as i32).min(sw + dx).min(sw);
    let y0 = (area.y as i32).max(dy).max(0);
    let y1 = (area.bottom() as i32).min(sh + dy).min(sh);
    if x1 <= x0 || y1 - y0 < MIN_COPY_ROWS as i32 || (dx, dy) == (0, 0) {
        return None;
    }
    let (x, w) = (x0 as usize, (x1 - x0) as usize);
    let src_x = (x0 - dx) as usize;
    let mut best: Option<(usize, usize, usize)> = None; // (start, len, rows it changes)
    let mut run: Option<(usize, usize, usize)> = None;
    for y in y0 as usize..=y1 as usize {
        let matches = y < y1 as usize && {
            let src_y = (y as i32 - dy) as usize;
            new.row(x, y, w) == old.row(src_x, src_y, w)
        };
        if matches {
            let changes = usize::from(new.row(x, y, w) != old.row(x, y, w));
            run = Some(match run {
                Some((start, len, c)) => (start, len + 1, c + changes),
                None => (y, 1, changes),
            });
        } else if let Some(r) = run.take() {
            if best.is_none_or(|b| r.2 > b.2) {
                best = Some(r);
            }
        }
    }
    let (start, len, changes) = best?;
    (len >= MIN_COPY_ROWS && changes >= MIN_COPY_ROWS / 2).then(|| CopyRect {
        src_x: src_x as u16,
        src_y: (start as i32 - dy) as u16,
        dst: Rect {
            x: x as u16,
            y: start as u16,
            w: w as u16,
            h: len as u16,
        },
    })
}

/// Applies a copy to a BGRX picture of `width` pixels per row, rows in the order that never
/// reads a row already overwritten.
pub fn apply_copy<T: Copy>(pixels: &mut [T], width: usize, per_pixel: usize, c: &CopyRect) {
    let (w, h) = (c.dst.w as usize, c.dst.h as usize);
    let row = |y: usize, x: usize| (y * width + x) * per_pixel;
    let copy_row = |pixels: &mut [T], i: usize| {
        let src = row(c.src_y as usize + i, c.src_x as usize);
        let dst = row(c.dst.y as usize + i, c.dst.x as usize);
        pixels.copy_within(src..src + w * per_pixel, dst);
    };
    if c.src_y as usize >= c.dst.y as usize {
        (0..h).for_each(|i| copy_row(pixels, i));
    } else {
        (0..h).rev().for_each(|i| copy_row(pixels, i));
    }
}
