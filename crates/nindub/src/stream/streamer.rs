//! NINDUB's streaming: the layers that do not fit the budget are read from
//! storage for every pass, into staging buffers allocated once.
//!
//! Without prefetch one buffer serves: read layer i, compute it, read layer
//! i + 1. With prefetch there are two, and a reader thread fills one while
//! the other is computed, so reading and computing overlap. The streamed
//! layers come in the same order on every pass (prompt or token), so the
//! reader simply cycles through them: while the last streamed layers and
//! the output head are computed, it already reads the first ones for the
//! next token.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::thread::JoinHandle;
use std::time::Instant;

use crate::error::{Error, Result};
use crate::ggml::QMatrix;
use crate::stream::source::Range;

/// How the fused engine holds its weights.
#[derive(Debug, Clone)]
pub struct StreamOptions {
    /// Bytes the engine may hold: weights, KV cache, activations. `None`:
    /// everything resident.
    pub budget: Option<u64>,
    /// Positions the KV cache is reserved for.
    pub context: usize,
    /// Read the next streamed layer while this one computes (two staging
    /// buffers instead of one).
    pub prefetch: bool,
    /// Storage, not the page cache: after reading a streamed layer, ask the
    /// operating system to drop its cached copy, so every pass reads it
    /// from the device again, as when the model is larger than the RAM.
    pub cold: bool,
}

impl Default for StreamOptions {
    fn default() -> Self {
        StreamOptions {
            budget: None,
            context: 0,
            prefetch: true,
            cold: false,
        }
    }
}

/// What streaming has cost so far.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct StreamStats {
    /// Bytes read from storage.
    pub bytes_read: u64,
    /// Seconds spent reading (on the reader thread when prefetching).
    pub read_secs: f64,
    /// Seconds the computation waited for a layer to arrive.
    pub wait_secs: f64,
}

/// A layer's seven matrices.
pub struct Weights {
    pub wq: QMatrix,
    pub wk: QMatrix,
    pub wv: QMatrix,
    pub wo: QMatrix,
    pub w_gate: QMatrix,
    pub w_up: QMatrix,
    pub w_down: QMatrix,
}

/// The seven matrices' names, in [`Weights`] order.
pub const MATRICES: [&str; 7] = [
    "attn_q",
    "attn_k",
    "attn_v",
    "attn_output",
    "ffn_gate",
    "ffn_up",
    "ffn_down",
];

impl Weights {
    pub fn bytes(&self) -> usize {
        [
            &self.wq,
            &self.wk,
            &self.wv,
            &self.wo,
            &self.w_gate,
            &self.w_up,
            &self.w_down,
        ]
        .iter()
        .map(|m| m.bytes())
        .sum()
    }

    pub fn all_mut(&mut self) -> [&mut QMatrix; 7] {
        [
            &mut self.wq,
            &mut self.wk,
            &mut self.wv,
            &mut self.wo,
            &mut self.w_gate,
            &mut self.w_up,
            &mut self.w_down,
        ]
    }
}

/// A streamed layer: where its seven matrices lie.
#[derive(Debug, Clone)]
pub(crate) struct StreamedLayer {
    pub layer: usize,
    pub ranges: [Range; 7],
}

type Filled = Result<(usize, Weights, f64)>;

// One streamer per model: the size of its variants does not matter.
#[allow(clippy::large_enum_variant)]
enum Mode {
    /// One buffer, read on demand.
    Sync {
        reader: Reader,
        buffer: Option<Weights>,
    },
    /// Buffers circulate: the reader thread fills free ones in the cyclic
    /// order of the streamed layers.
    Prefetch {
        full: Receiver<Filled>,
        free: Option<Sender<Weights>>,
        thread: Option<JoinHandle<()>>,
    },
}

/// Reads layers into buffers.
struct Reader {
    paths: Vec<PathBuf>,
    files: Vec<Option<File>>,
    cold: bool,
}

impl Reader {
    fn new(paths: Vec<PathBuf>, cold: bool) -> Self {
        let files = paths.iter().map(|_| None).collect();
        Reader { paths, files, cold }
    }

    // ANCHOR: read_layer
    /// Reads one layer's matrices into `w`, whose buffers already have the
    /// right sizes.
    fn read(&mut self, layer: &StreamedLayer, w: &mut Weights) -> Result<()> {
        for (m, r) in w.all_mut().into_iter().zip(&layer.ranges) {
            if m.data.len() != r.bytes {
                return Err(Error::invalid(
                    "layer streaming",
                    format!(
                        "layer {} differs in shape or format from the staging buffers; \
                         place it resident or convert the model to one format",
                        layer.layer
                    ),
                ));
            }
            let path = &self.paths[r.file];
            let file = match &mut self.files[r.file] {
                Some(f) => f,
                slot => slot.insert(File::open(path).map_err(|e| Error::io(path, e))?),
            };
            file.seek(SeekFrom::Start(r.offset))
                .and_then(|_| file.read_exact(&mut m.data))
                .map_err(|e| {
                    Error::io(
                        path,
                        std::io::Error::new(
                            e.kind(),
                            format!("streaming layer {}: {e}", layer.layer),
                        ),
                    )
                })?;
            if self.cold {
                drop_cached(file, r.offset, r.bytes as u64);
            }
        }
        Ok(())
    }
    // ANCHOR_END: read_layer
}

/// The staging buffers and whoever fills them.
pub(crate) struct Streamer {
    order: Vec<StreamedLayer>,
    /// Index in `order` of the layer the computation wants next.
    next: usize,
    mode: Mode,
    /// A reader error ends streaming: later calls repeat it.
    failed: Option<String>,
    pub stats: StreamStats,
}

impl Streamer {
    /// Streams `order` (in that order, every pass) through `buffers`: one
    /// buffer reads synchronously, two or more prefetch.
    pub fn new(
        paths: Vec<PathBuf>,
        order: Vec<StreamedLayer>,
        buffers: Vec<Weights>,
        cold: bool,
    ) -> Self {
        let mut reader = Reader::new(paths, cold);
        let mode = if buffers.len() < 2 {
            Mode::Sync {
                reader,
                buffer: buffers.into_iter().next(),
            }
        } else {
            let (free_tx, free_rx) = channel::<Weights>();
            let (full_tx, full_rx) = channel::<Filled>();
            for b in buffers {
                let _ = free_tx.send(b);
            }
            let cycle = order.clone();
            let thread = std::thread::Builder::new()
                .name("nindub-prefetch".into())
                .spawn(move || {
                    // ANCHOR: prefetch
                    // Fill each free buffer with the next layer in the cycle;
                    // stop when the engine is dropped (the channel closes).
                    for layer in cycle.iter().cycle() {
                        let Ok(mut w) = free_rx.recv() else { return };
                        let started = Instant::now();
                        let filled = reader
                            .read(layer, &mut w)
                            .map(|()| (layer.layer, w, started.elapsed().as_secs_f64()));
                        let failed = filled.is_err();
                        if full_tx.send(filled).is_err() || failed {
                            return;
                        }
                    }
                    // ANCHOR_END: prefetch
                })
                .ok();
            Mode::Prefetch {
                full: full_rx,
                free: Some(free_tx),
                thread,
            }
        };
        Streamer {
            order,
            next: 0,
            mode,
            failed: None,
            stats: StreamStats::default(),
        }
    }

    /// Layer `layer`'s weights, waiting for them if they are not read yet.
    /// Give the buffer back with [`Streamer::give_back`] once computed.
    pub fn take(&mut self, layer: usize) -> Result<Weights> {
        if let Some(why) = &self.failed {
            return Err(Error::invalid("layer streaming", why.clone()));
        }
        let Some(want) = self.order.get(self.next) else {
            return Err(Error::invalid(
                "layer streaming",
                format!("layer {layer} asked for, but no layer is streamed"),
            ));
        };
        if want.layer != layer {
            return Err(Error::invalid(
                "layer streaming",
                format!("layer {layer} asked for while layer {} is due", want.layer),
            ));
        }
        let started = Instant::now();
        let got = match &mut self.mode {
            Mode::Sync { reader, buffer } => match buffer.take() {
                Some(mut w) => reader.read(want, &mut w).map(|()| {
                    let secs = started.elapsed().as_secs_f64();
                    (layer, w, secs)
                }),
                None => Err(Error::invalid(
                    "layer streaming",
                    "the staging buffer was not given back",
                )),
            },
            Mode::Prefetch { full, .. } => match full.recv() {
                Ok(filled) => filled,
                Err(_) => Err(Error::invalid(
                    "layer streaming",
                    "the prefetch thread stopped",
                )),
            },
        };
        match got {
            Ok((l, w, read_secs)) if l == layer => {
                self.stats.wait_secs += started.elapsed().as_secs_f64();
                self.stats.read_secs += read_secs;
                self.stats.bytes_read += w.bytes() as u64;
                self.next = (self.next + 1) % self.order.len();
                Ok(w)
            }
            Ok((l, _, _)) => {
                let why = format!("the reader delivered layer {l} when layer {layer} was due");
                self.failed = Some(why.clone());
                Err(Error::invalid("layer streaming", why))
            }
            Err(e) => {
                self.failed = Some(e.to_string());
                Err(e)
            }
        }
    }

    /// Returns a computed layer's buffer, to be filled again.
    pub fn give_back(&mut self, w: Weights) {
        match &mut self.mode {
            Mode::Sync { buffer, .. } => *buffer = Some(w),
            Mode::Prefetch {
                free: Some(free), ..
            } => {
                let _ = free.send(w);
            }
            Mode::Prefetch { free: None, .. } => {}
        }
    }
}

impl Drop for Streamer {
    fn drop(&mut self) {
        if let Mode::Prefetch { free, thread, full } = &mut self.mode {
            // Closing the free channel ends the reader's loop; drain what it
            // sends meanwhile so it never blocks.
            free.take();
            while full.try_recv().is_ok() {}
            if let Some(t) = thread.take() {
                let _ = t.join();
            }
        }
    }
}

// ANCHOR: cold
/// Asks the operating system to forget its cached copy of `len` bytes of
/// `file` at `offset` (Linux; elsewhere nothing happens and reads may come
/// from the cache).
pub fn drop_cached(file: &File, offset: u64, len: u64) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: posix_fadvise only reads its integer arguments; an
        // invalid descriptor or range makes it return an error, ignored
        // here because the advice is only a hint.
        unsafe {
            libc::posix_fadvise(
                file.as_raw_fd(),
                offset as libc::off_t,
                len as libc::off_t,
                libc::POSIX_FADV_DONTNEED,
            );
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (file, offset, len);
}
// ANCHOR_END: cold

// ANCHOR: throughput
/// The storage read throughput of the model's own files, bytes per second:
/// each file read sequentially from start to end into one buffer of
/// `buffer` bytes, as the streamer reads them. `cold` drops each file from
/// the page cache first (and what was read after), as the streamer does.
pub fn read_throughput(
    source: &crate::stream::source::ModelSource,
    buffer: usize,
    cold: bool,
) -> Result<f64> {
    let mut buf = vec![0u8; buffer.max(1 << 16)];
    let (mut bytes, mut secs) = (0u64, 0.0);
    for f in &source.files {
        let mut file = File::open(&f.path).map_err(|e| Error::io(&f.path, e))?;
        if cold {
            drop_cached(&file, 0, 0);
        }
        let started = Instant::now();
        loop {
            let n = file.read(&mut buf).map_err(|e| Error::io(&f.path, e))?;
            if n == 0 {
                break;
            }
            bytes += n as u64;
        }
        secs += started.elapsed().as_secs_f64();
        if cold {
            drop_cached(&file, 0, 0);
        }
    }
    Ok(bytes as f64 / secs.max(1e-9))
}
// ANCHOR_END: throughput
