//! The SM3 compression function written once, generic over a "word" type.
//!
//! The same code compresses one block with `u32` words (the scalar path) or
//! 8/16 independent blocks at once with SIMD vectors whose lanes are
//! independent messages (the multi-buffer paths in `x86.rs`). Writing it once
//! keeps the three paths from drifting apart; the tests compare them anyway.

/// T_j <<< (j mod 32), precomputed so a round adds a constant instead of rotating one.
pub(crate) const TJ: [u32; 64] = {
    let mut t = [0u32; 64];
    let mut j = 0;
    while j < 64 {
        let base: u32 = if j < 16 { 0x79cc4519 } else { 0x7a879d8a };
        t[j] = base.rotate_left((j % 32) as u32);
        j += 1;
    }
    t
};

/// 32-bit lane-wise operations the compression function needs.
///
/// # Safety
/// Implementations for SIMD types execute instructions of a CPU extension;
/// every method may only be called when that extension is present. `u32`
/// has no such requirement.
pub(crate) unsafe trait Word: Copy {
    unsafe fn splat(x: u32) -> Self;
    unsafe fn add(a: Self, b: Self) -> Self;
    unsafe fn xor(a: Self, b: Self) -> Self;
    unsafe fn rotl<const N: u32>(a: Self) -> Self;
    /// a ^ b ^ c
    unsafe fn xor3(a: Self, b: Self, c: Self) -> Self;
    /// Majority: (a & b) | (a & c) | (b & c)  (FF_j for j >= 16)
    unsafe fn maj(a: Self, b: Self, c: Self) -> Self;
    /// Choose: (e & f) | (!e & g)  (GG_j for j >= 16)
    unsafe fn ch(e: Self, f: Self, g: Self) -> Self;
}

// SAFETY: plain integer arithmetic, no CPU extension involved.
unsafe impl Word for u32 {
    #[inline(always)]
    unsafe fn splat(x: u32) -> Self {
        x
    }
    #[inline(always)]
    unsafe fn add(a: Self, b: Self) -> Self {
        a.wrapping_add(b)
    }
    #[inline(always)]
    unsafe fn xor(a: Self, b: Self) -> Self {
        a ^ b
    }
    #[inline(always)]
    unsafe fn rotl<const N: u32>(a: Self) -> Self {
        a.rotate_left(N)
    }
    #[inline(always)]
    unsafe fn xor3(a: Self, b: Self, c: Self) -> Self {
        a ^ b ^ c
    }
    #[inline(always)]
    unsafe fn maj(a: Self, b: Self, c: Self) -> Self {
        // Two fewer operations than the textbook form.
        (a & b) | (c & (a | b))
    }
    #[inline(always)]
    unsafe fn ch(e: Self, f: Self, g: Self) -> Self {
        ((f ^ g) & e) ^ g
    }
}

#[inline(always)]
unsafe fn p0<W: Word>(x: W) -> W {
    // SAFETY: the caller guarantees the CPU extension `W` needs (this fn's contract, as `Word`'s).
    unsafe { W::xor3(x, W::rotl::<9>(x), W::rotl::<17>(x)) }
}

#[inline(always)]
unsafe fn p1<W: Word>(x: W) -> W {
    // SAFETY: the caller guarantees the CPU extension `W` needs (this fn's contract, as `Word`'s).
    unsafe { W::xor3(x, W::rotl::<15>(x), W::rotl::<23>(x)) }
}

/// The message words round j uses: (W[j], W'[j] = W[j] ^ W[j+4]).
///
/// `expand`: the schedule lives in a 16-word window `w` (W[i] in `w[i % 16]`,
/// every index a constant after macro expansion, so the window stays in
/// registers where there are enough); round j first expands W[j+4], the
/// newest word it needs, into the slot of W[j-12], which no later round reads.
///
/// `constant`: the block is the same in every lane and was expanded once in
/// scalar code (`w` = W[0..68] then W'[0..64]); the words are broadcast.
macro_rules! sched {
    (expand, $W:ty, $w:ident, $j:expr) => {{
        if $j + 4 >= 16 {
            let k = $j + 4;
            let x = <$W>::xor3($w[(k - 16) % 16], $w[(k - 9) % 16], <$W>::rotl::<15>($w[(k - 3) % 16]));
            $w[k % 16] = <$W>::xor3(p1(x), <$W>::rotl::<7>($w[(k - 13) % 16]), $w[(k - 6) % 16]);
        }
        let wj = $w[$j % 16];
        (wj, <$W>::xor(wj, $w[($j + 4) % 16]))
    }};
    (constant, $W:ty, $w:ident, $j:expr) => {
        (<$W>::splat($w[$j]), <$W>::splat($w[68 + $j]))
    };
}

/// One round. Instead of shifting all eight registers each round, the new A is
/// written into D's slot and the new E into H's slot; the caller renames the
/// variables (see [`rounds4`]).
macro_rules! round {
    ($mode:ident, $W:ty, $w:ident, $j:expr, $ff:ident, $gg:ident,
     $a:ident, $b:ident, $c:ident, $d:ident, $e:ident, $f:ident, $g:ident, $h:ident) => {{
        let (wj, wj4) = sched!($mode, $W, $w, $j);
        // The rounds are latency-bound (E -> E' is add, rotate, add, P0), so the
        // sums are grouped to let the newest value, E, enter last.
        let a12 = <$W>::rotl::<12>($a);
        let ss1 = <$W>::rotl::<7>(<$W>::add(<$W>::add(a12, <$W>::splat(TJ[$j])), $e));
        let ss2 = <$W>::xor(ss1, a12);
        let tt1 = <$W>::add(<$W>::add($ff($a, $b, $c), <$W>::add($d, wj4)), ss2);
        let tt2 = <$W>::add(<$W>::add($gg($e, $f, $g), <$W>::add($h, wj)), ss1);
        $b = <$W>::rotl::<9>($b);
        $f = <$W>::rotl::<19>($f);
        $d = tt1;
        $h = p0(tt2);
    }};
}

/// Four rounds with the register renaming applied; after them the names line up again.
macro_rules! rounds4 {
    ($mode:ident, $W:ty, $w:ident, $j:expr, $ff:ident, $gg:ident, $a:ident, $b:ident, $c:ident, $d:ident, $e:ident, $f:ident, $g:ident, $h:ident) => {
        round!($mode, $W, $w, $j, $ff, $gg, $a, $b, $c, $d, $e, $f, $g, $h);
        round!($mode, $W, $w, $j + 1, $ff, $gg, $d, $a, $b, $c, $h, $e, $f, $g);
        round!($mode, $W, $w, $j + 2, $ff, $gg, $c, $d, $a, $b, $g, $h, $e, $f);
        round!($mode, $W, $w, $j + 3, $ff, $gg, $b, $c, $d, $a, $f, $g, $h, $e);
    };
}

/// All 64 rounds and the feed-forward into `state`.
macro_rules! compress_body {
    ($mode:ident, $W:ty, $w:ident, $state:ident) => {{
        let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut h] = *$state;
        let ff0 = <$W>::xor3;
        let gg0 = <$W>::xor3;
        let ff1 = <$W>::maj;
        let gg1 = <$W>::ch;
        rounds4!($mode, $W, $w, 0, ff0, gg0, a, b, c, d, e, f, g, h);
        rounds4!($mode, $W, $w, 4, ff0, gg0, a, b, c, d, e, f, g, h);
        rounds4!($mode, $W, $w, 8, ff0, gg0, a, b, c, d, e, f, g, h);
        rounds4!($mode, $W, $w, 12, ff0, gg0, a, b, c, d, e, f, g, h);
        rounds4!($mode, $W, $w, 16, ff1, gg1, a, b, c, d, e, f, g, h);
        rounds4!($mode, $W, $w, 20, ff1, gg1, a, b, c, d, e, f, g, h);
        rounds4!($mode, $W, $w, 24, ff1, gg1, a, b, c, d, e, f, g, h);
        rounds4!($mode, $W, $w, 28, ff1, gg1, a, b, c, d, e, f, g, h);
        rounds4!($mode, $W, $w, 32, ff1, gg1, a, b, c, d, e, f, g, h);
        rounds4!($mode, $W, $w, 36, ff1, gg1, a, b, c, d, e, f, g, h);
        rounds4!($mode, $W, $w, 40, ff1, gg1, a, b, c, d, e, f, g, h);
        rounds4!($mode, $W, $w, 44, ff1, gg1, a, b, c, d, e, f, g, h);
        rounds4!($mode, $W, $w, 48, ff1, gg1, a, b, c, d, e, f, g, h);
        rounds4!($mode, $W, $w, 52, ff1, gg1, a, b, c, d, e, f, g, h);
        rounds4!($mode, $W, $w, 56, ff1, gg1, a, b, c, d, e, f, g, h);
        rounds4!($mode, $W, $w, 60, ff1, gg1, a, b, c, d, e, f, g, h);
        for (s, v) in $state.iter_mut().zip([a, b, c, d, e, f, g, h]) {
            *s = <$W>::xor(*s, v);
        }
    }};
}

/// Compress one block given as 16 big-endian-decoded message words.
///
/// # Safety
/// The CPU must support the extension `W` needs (see [`Word`]).
#[inline(always)]
pub(crate) unsafe fn compress_words<W: Word>(state: &mut [W; 8], m: &[W; 16]) {
    // SAFETY: the caller guarantees the CPU extension `W` needs (this fn's contract, as `Word`'s).
    unsafe {
        let mut w = *m;
        compress_body!(expand, W, w, state);
    }
}

/// Length of an expanded schedule: W[0..68] then W'[0..64].
pub(crate) const EXPANDED_LEN: usize = 68 + 64;

/// Expand one block's schedule in scalar code, for [`compress_expanded`].
pub(crate) fn expand_block(block: &[u8; 64]) -> [u32; EXPANDED_LEN] {
    let mut x = [0u32; EXPANDED_LEN];
    for i in 0..16 {
        x[i] = u32::from_be_bytes([block[4 * i], block[4 * i + 1], block[4 * i + 2], block[4 * i + 3]]);
    }
    for j in 16..68 {
        let t = x[j - 16] ^ x[j - 9] ^ x[j - 3].rotate_left(15);
        x[j] = (t ^ t.rotate_left(15) ^ t.rotate_left(23)) ^ x[j - 13].rotate_left(7) ^ x[j - 6];
    }
    for j in 0..64 {
        x[68 + j] = x[j] ^ x[j + 4];
    }
    x
}

/// Compress the same block, pre-expanded by [`expand_block`], into every lane
/// (e.g. the padding block of equal-length messages whose length is a multiple
/// of 64): no transposition and no message expansion.
///
/// # Safety
/// The CPU must support the extension `W` needs (see [`Word`]).
#[inline(always)]
pub(crate) unsafe fn compress_expanded<W: Word>(state: &mut [W; 8], x: &[u32; EXPANDED_LEN]) {
    // SAFETY: the caller guarantees the CPU extension `W` needs (this fn's contract, as `Word`'s).
    unsafe {
        compress_body!(constant, W, x, state);
    }
}
