//! The networks, run by ONNX Runtime: the shared library and the ONNX files `make models`
//! lays out (`workers/models/manifest.json` says what each is, where it comes from and
//! how it was converted), loaded once per process from `FANOUT_MODELS_DIR` (default
//! `.fanout/models`). Each network is one session with `FANOUT_VISION_THREADS` threads
//! (default 1: workers run several subtasks side by side instead); a session runs one
//! batch at a time.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ort::session::Session;
use ort::value::Tensor;

/// Why the vision models could not be loaded or run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    /// A file `make models` lays out is missing.
    #[error("vision model file {0} is missing (run `make models`)")]
    Missing(String),
    /// ONNX Runtime failed to load or run a network.
    #[error("vision runtime: {0}")]
    Runtime(String),
    /// A network answered tensors of unexpected shapes.
    #[error("vision model {model}: {what}")]
    Shape {
        /// The network.
        model: &'static str,
        /// What was wrong.
        what: String,
    },
}

fn runtime(err: impl std::fmt::Display) -> ModelError {
    ModelError::Runtime(err.to_string())
}

/// The ONNX Runtime library inside the models directory.
pub const RUNTIME_LIBRARY: &str = "libonnxruntime.so.1.32.0";

/// The directory of the models: `FANOUT_MODELS_DIR`, else `.fanout/models`.
pub fn models_dir() -> PathBuf {
    std::env::var_os("FANOUT_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(".fanout/models"))
}

/// An output tensor: its shape and values.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    /// Dimensions.
    pub shape: Vec<usize>,
    /// Values, row-major.
    pub values: Vec<f32>,
}

/// One network: a session and its input's name.
pub struct Net {
    name: &'static str,
    session: Mutex<Session>,
    input: String,
}

impl Net {
    /// Loads `file` of `dir` as the network `name`.
    fn load(
        env: &ort::environment::Environment,
        dir: &Path,
        name: &'static str,
        file: &str,
        threads: usize,
    ) -> Result<Net, ModelError> {
        let path = dir.join(file);
        if !path.is_file() {
            return Err(ModelError::Missing(path.display().to_string()));
        }
        let session = Session::builder(env)
            .map_err(runtime)?
            .with_intra_threads(threads)
            .map_err(runtime)?
            .with_inter_threads(1)
            .map_err(runtime)?
            .commit_from_file(&path)
            .map_err(runtime)?;
        let input = session
            .inputs()
            .first()
            .map(|i| i.name().to_string())
            .ok_or_else(|| ModelError::Shape {
                model: name,
                what: "no input".into(),
            })?;
        Ok(Net {
            name,
            session: Mutex::new(session),
            input,
        })
    }

    /// Runs the network on one input tensor of `shape`; its outputs in the model's order.
    pub fn run(&self, shape: [usize; 4], values: Vec<f32>) -> Result<Vec<Output>, ModelError> {
        debug_assert_eq!(shape.iter().product::<usize>(), values.len());
        let tensor = Tensor::from_array((shape, values)).map_err(runtime)?;
        let mut session = self.session.lock().unwrap_or_else(|p| p.into_inner());
        let outputs = session
            .run(ort::inputs![self.input.as_str() => tensor])
            .map_err(runtime)?;
        let mut out = Vec::with_capacity(outputs.len());
        for (_, value) in outputs.iter() {
            let (dims, data) = value.try_extract_tensor::<f32>().map_err(runtime)?;
            out.push(Output {
                shape: dims.iter().map(|d| (*d).max(0) as usize).collect(),
                values: data.to_vec(),
            });
        }
        Ok(out)
    }

    /// The network's name.
    pub fn name(&self) -> &'static str {
        self.name
    }
}

/// Every network of the vision module.
pub struct Models {
    /// BlazeFace full-range: faces and six keypoints.
    pub detector: Net,
    /// MTCNN's output network: five landmarks within a face's box.
    pub landmarks: Net,
    /// HSE FaceRes: 1024-D descriptor, gender, age.
    pub faceres: Net,
    /// FaceNet Inception-ResNet-v1: 512-D descriptor (batch of one).
    pub facenet: Net,
    /// Mini-Xception: seven emotions.
    pub emotion: Net,
    /// MobileNetV2: mask or not.
    pub mask: Net,
    /// SSDLite MobileNetV2: people (see [`super::people`]).
    pub person: Net,
    _env: ort::environment::Environment,
}

impl Models {
    /// Loads ONNX Runtime and every network from `dir`, each with `threads` threads.
    pub fn load(dir: &Path, threads: usize) -> Result<Models, ModelError> {
        let library = dir.join(RUNTIME_LIBRARY);
        if !library.is_file() {
            return Err(ModelError::Missing(library.display().to_string()));
        }
        let env = ort::init_from(&library)
            .map_err(runtime)?
            .with_name("fanout-vision")
            .build()
            .map_err(runtime)?;
        let threads = threads.max(1);
        Ok(Models {
            detector: Net::load(&env, dir, "blazeface", "blazeface-full-range.onnx", threads)?,
            landmarks: Net::load(&env, dir, "mtcnn-onet", "mtcnn-onet.onnx", threads)?,
            faceres: Net::load(&env, dir, "faceres", "faceres.onnx", threads)?,
            facenet: Net::load(&env, dir, "facenet", "facenet.onnx", threads)?,
            emotion: Net::load(&env, dir, "emotion", "emotion.onnx", threads)?,
            mask: Net::load(&env, dir, "mask", "mask.onnx", threads)?,
            person: Net::load(&env, dir, "ssdlite-person", "ssdlite-person.onnx", threads)?,
            _env: env,
        })
    }

    /// Loads them from [`models_dir`] with `FANOUT_VISION_THREADS` threads (default 1).
    pub fn from_env() -> Result<Models, ModelError> {
        let threads = std::env::var("FANOUT_VISION_THREADS")
            .ok()
            .and_then(|t| t.parse().ok())
            .unwrap_or(1);
        Models::load(&models_dir(), threads)
    }
}
