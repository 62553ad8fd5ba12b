//! The contrastive objective of the relsim recipe: image embeddings against the frozen MiniLM
//! embeddings of their anonymous captions, in-batch negatives, a learnable temperature.

use burn::module::{Module, Param};
use burn::tensor::activation::log_softmax;
use burn::tensor::{backend::Backend, Tensor, TensorData};

/// The temperature the paper starts from.
pub const INITIAL_TEMPERATURE: f32 = 0.07;
/// The temperature never goes below this (CLIP's clamp of the logit scale at 100).
pub const MIN_TEMPERATURE: f32 = 0.01;

/// The learnable temperature, stored as log(1 / temperature) as in CLIP.
#[derive(Module, Debug)]
pub struct Temperature<B: Backend> {
    pub log_scale: Param<Tensor<B, 1>>,
}

impl<B: Backend> Temperature<B> {
    /// Starts at `INITIAL_TEMPERATURE`.
    pub fn new(device: &B::Device) -> Self {
        let start = (1.0 / INITIAL_TEMPERATURE).ln();
        Temperature { log_scale: Param::from_tensor(Tensor::from_floats([start], device)) }
    }

    /// 1 / temperature, clamped to [1, 1 / MIN_TEMPERATURE].
    pub fn scale(&self) -> Tensor<B, 1> {
        self.log_scale.val().clamp(0.0, (1.0 / MIN_TEMPERATURE).ln()).exp()
    }

    /// The current temperature.
    pub fn value(&self) -> f32 {
        1.0 / self.scale().into_data().convert::<f32>().into_vec::<f32>().expect("f32")[0]
    }
}

/// Which pairs of a batch are positives: `same[i][j]` when items i and j are in one group (the
/// same caption text, or the same relation): a batch often holds several images of one group,
/// and they are not negatives of each other.
pub fn positives(caption_ids: &[usize]) -> Vec<f32> {
    let n = caption_ids.len();
    let mut targets = vec![0f32; n * n];
    for i in 0..n {
        let count = caption_ids.iter().filter(|&&c| c == caption_ids[i]).count() as f32;
        for j in 0..n {
            if caption_ids[j] == caption_ids[i] {
                targets[i * n + j] = 1.0 / count;
            }
        }
    }
    targets
}

/// The result of one contrastive step.
pub struct ContrastiveOutput<B: Backend> {
    /// The symmetric InfoNCE loss (image→text and text→image, averaged).
    pub loss: Tensor<B, 1>,
    /// Share of images whose best caption in the batch is their own text.
    pub accuracy: f32,
}

/// Symmetric InfoNCE between unit image vectors `[n, d]` and unit caption vectors `[n, d]`;
/// `caption_ids` are the group ids that decide positives (see [`positives`]).
pub fn info_nce<B: Backend>(images: Tensor<B, 2>, captions: Tensor<B, 2>, caption_ids: &[usize], temperature: &Temperature<B>) -> ContrastiveOutput<B> {
    let n = caption_ids.len();
    let device = images.device();
    let logits = images.matmul(captions.transpose()) * temperature.scale().reshape([1, 1]);
    let targets = Tensor::<B, 2>::from_data(TensorData::new(positives(caption_ids), [n, n]), &device);
    let image_to_text = -(log_softmax(logits.clone(), 1) * targets.clone()).sum_dim(1).mean();
    // The targets are symmetric: caption j's positives are the images with its text.
    let text_to_image = -(log_softmax(logits.clone().transpose(), 1) * targets).sum_dim(1).mean();
    let best: Vec<i64> = logits.argmax(1).into_data().convert::<i64>().into_vec::<i64>().expect("indices");
    let correct = best.iter().enumerate().filter(|(i, &j)| caption_ids[*i] == caption_ids[j as usize]).count();
    ContrastiveOutput { loss: (image_to_text + text_to_image) / 2.0, accuracy: correct as f32 / n as f32 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::NdArray;

    type B = NdArray<f32>;

    #[test]
    fn loss_matches_a_hand_computation() {
        let device = Default::default();
        let images = Tensor::<B, 2>::from_floats([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]], &device);
        let captions = Tensor::<B, 2>::from_floats([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]], &device);
        // Images 1 and 2 share caption 1.
        let ids = [0, 1, 1];
        let t = Temperature::<B>::new(&device);
        let out = info_nce(images, captions, &ids, &t);
        let s = 1.0f64 / 0.07;
        let logits = [[s, 0.0, 0.0], [0.0, s, s], [0.6 * s, 0.8 * s, 0.8 * s]];
        let targets = [[1.0, 0.0, 0.0], [0.0, 0.5, 0.5], [0.0, 0.5, 0.5]];
        let ce = |rows: [[f64; 3]; 3]| {
            (0..3)
                .map(|i| {
                    let lse = rows[i].iter().map(|v| v.exp()).sum::<f64>().ln();
                    -(0..3).map(|j| targets[i][j] * (rows[i][j] - lse)).sum::<f64>()
                })
                .sum::<f64>()
                / 3.0
        };
        let transposed = [[logits[0][0], logits[1][0], logits[2][0]], [logits[0][1], logits[1][1], logits[2][1]], [logits[0][2], logits[1][2], logits[2][2]]];
        let expected = (ce(logits) + ce(transposed)) / 2.0;
        let got = f64::from(out.loss.into_data().convert::<f32>().into_vec::<f32>().unwrap()[0]);
        assert!((got - expected).abs() < 1e-4 * expected.abs().max(1.0), "{got} vs {expected}");
        assert_eq!(out.accuracy, 1.0);
        assert!((t.value() - 0.07).abs() < 1e-6);
    }
}
