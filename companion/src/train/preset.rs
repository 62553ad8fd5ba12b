//! Named starting points for `relsim train`: the recipe's numbers for each model.

use std::path::Path;

use relsim_shared::image::lite::LiteConfig;

use super::{Augment, Positives, TrainOptions};

/// Named starting points for `relsim train`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    /// relsim-lite, the built-in default image encoder.
    Lite,
    /// A toy model for tests: seconds per run.
    Tiny,
    /// The Qwen relsim encoder's adapter (needs --base): 100 steps of 16 images.
    QwenTiny,
}

impl Preset {
    /// The options of this preset for the scene set in `data`.
    pub fn options(self, data: &Path) -> TrainOptions {
        match self {
            Preset::Lite => TrainOptions {
                data: data.to_path_buf(),
                model: LiteConfig::new(),
                // About 50 minutes on 2 cores (270 images/s).
                steps: 12000,
                batch_size: 64,
                accumulation: 1,
                learning_rate: 1e-3,
                warmup_steps: 150,
                final_lr_fraction: 0.02,
                weight_decay: 0.05,
                clip_norm: 1.0,
                checkpoint_every: 100,
                validate_every: 1000,
                seed: 0,
                positives: Positives::Relation,
                augment: Augment::Channels,
                centroid_weight: 1.0,
                qwen: None,
                init: None,
            },
            Preset::Tiny => TrainOptions {
                data: data.to_path_buf(),
                model: LiteConfig::new().with_image_size(16).with_patch_size(4).with_hidden(16).with_layers(2).with_heads(2),
                steps: 8,
                batch_size: 8,
                accumulation: 2,
                learning_rate: 3e-3,
                warmup_steps: 2,
                final_lr_fraction: 0.1,
                weight_decay: 0.05,
                clip_norm: 1.0,
                checkpoint_every: 2,
                validate_every: 4,
                seed: 0,
                positives: Positives::Relation,
                augment: Augment::Channels,
                centroid_weight: 1.0,
                qwen: None,
                init: None,
            },
            Preset::QwenTiny => TrainOptions {
                data: data.to_path_buf(),
                model: LiteConfig::new(),
                steps: 100,
                batch_size: 16,
                accumulation: 1,
                learning_rate: 2e-3,
                warmup_steps: 10,
                final_lr_fraction: 0.1,
                weight_decay: 0.0,
                clip_norm: 1.0,
                checkpoint_every: 50,
                // Tiny sets have too few val scenes per relation for P@1 to mean anything.
                validate_every: 0,
                seed: 0,
                positives: Positives::Relation,
                augment: Augment::None,
                centroid_weight: 0.0,
                qwen: None,
                init: None,
            },
        }
    }
}
