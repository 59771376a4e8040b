//! [`Precision`]: the arithmetic of a run's matrix products, float32 or
//! bf16 autocast.
//!
//! bf16 autocast follows what `torch.autocast(dtype=torch.bfloat16)` does to
//! a matmul, which is what sae-lens's `autocast_sae` / `autocast_data`
//! switch on: both operands are rounded to bf16, the products are
//! accumulated in float32 (tensor cores do this), the result is rounded to
//! bf16 and then widened to float32 again, so that everything after the
//! product (bias, activation, losses) runs in float32. Parameters stay
//! float32 (the master weights); their gradients come back through the
//! casts as float32, so the optimizer state is float32 too.
//!
//! Only products change; sums, reductions and element-wise operations are
//! float32 in both modes, as under torch's autocast for the operations an
//! SAE uses (`+ bias` of a bf16 product and a float32 bias promotes to
//! float32; `mse_loss`, `sum`, `norm` autocast to float32).

use burn::prelude::*;
use burn::tensor::{DType, FloatDType};

/// The arithmetic of matrix products.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    /// Operands, products and results in float32.
    #[default]
    F32,
    /// bf16 operands and result, float32 accumulation (the module docs).
    Bf16,
}

impl Precision {
    /// `a · b`: `[m, k] × [k, n]` → `[m, n]`, float32 in and out.
    pub fn matmul<B: Backend>(self, a: Tensor<B, 2>, b: Tensor<B, 2>) -> Tensor<B, 2> {
        match self {
            Self::F32 => a.matmul(b),
            Self::Bf16 => a
                .cast(FloatDType::BF16)
                .matmul(b.cast(FloatDType::BF16))
                .cast(FloatDType::F32),
        }
    }

    /// `t` rounded to the nearest bf16 and widened back to float32 (the
    /// identity at [`Precision::F32`]): an operand or a result of a product
    /// written as a gather and a sum rather than a matmul. The gradient
    /// passes through unchanged.
    pub fn round<B: Backend, const D: usize>(self, t: Tensor<B, D>) -> Tensor<B, D> {
        match self {
            Self::F32 => t,
            Self::Bf16 => t.cast(FloatDType::BF16).cast(FloatDType::F32),
        }
    }

    /// Whether `B` runs bf16 on `device` as a first-class type with
    /// accelerated products (tensor cores): the condition for honouring an
    /// autocast request. CPU backends store and compute bf16 but widen it
    /// to float32 for their GEMMs, so they do not qualify.
    pub fn bf16_accelerated<B: Backend>(device: &B::Device) -> bool {
        use burn::tensor::backend::DTypeUsage;
        B::dtype_usage(device, DType::BF16)
            .is_superset(DTypeUsage::Storage | DTypeUsage::Arithmetic | DTypeUsage::Accelerated)
    }

    /// The name used in logs and reports: `float32` or `bf16`.
    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "float32",
            Self::Bf16 => "bf16",
        }
    }
}

#[cfg(all(test, feature = "flex"))]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, Flex};

    type B = Autodiff<Flex>;

    fn tensor(v: Vec<f32>, shape: [usize; 2]) -> Tensor<B, 2> {
        Tensor::from_data(TensorData::new(v, shape), &Default::default())
    }

    fn values<const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
        t.into_data().convert::<f32>().to_vec().unwrap()
    }

    /// bf16 keeps 8 significand bits: 1 + 2⁻⁹ rounds to 1, 1 + 2⁻⁷ stays;
    /// the result is float32 again.
    #[test]
    fn round_keeps_eight_bits_and_returns_float32() {
        let t = tensor(vec![1.0 + 2f32.powi(-9), 1.0 + 2f32.powi(-7), -3.0], [1, 3]);
        let r = Precision::Bf16.round(t.clone());
        assert_eq!(r.dtype(), DType::F32);
        assert_eq!(values(r), vec![1.0, 1.0 + 2f32.powi(-7), -3.0]);
        assert_eq!(values(Precision::F32.round(t.clone())), values(t));
    }

    /// The bf16 product equals the float32 product of the rounded operands,
    /// rounded; the float32 product of the raw operands differs; gradients
    /// reach the float32 operands as float32.
    #[test]
    fn bf16_matmul_rounds_operands_and_result() {
        let a = tensor(vec![1.0 + 2f32.powi(-10), 2.0, 0.333_333_34, 5.0], [2, 2]).require_grad();
        let b = tensor(vec![3.0, 0.1, 1.0 + 2f32.powi(-12), 7.0], [2, 2]).require_grad();
        let p = Precision::Bf16.matmul(a.clone(), b.clone());
        assert_eq!(p.dtype(), DType::F32);
        let expect = Precision::Bf16.round(
            Precision::Bf16
                .round(a.clone())
                .matmul(Precision::Bf16.round(b.clone())),
        );
        assert_eq!(values(p.clone()), values(expect));
        assert_ne!(values(p.clone()), values(a.clone().matmul(b.clone())));
        let grads = p.sum().backward();
        let ga = a.grad(&grads).unwrap();
        assert_eq!(ga.dtype(), DType::F32);
        // d(sum(a·b))/da[i][k] = Σ_j b[k][j], in bf16: 3 + 0.1 and 1 + 7.
        let g = ga.into_data().convert::<f32>().to_vec::<f32>().unwrap();
        assert!(
            (g[0] - 3.1).abs() < 0.02 && (g[1] - 8.0).abs() < 0.05,
            "{g:?}"
        );
    }

    #[test]
    fn cpu_backends_are_not_accelerated() {
        assert!(!Precision::bf16_accelerated::<B>(&Default::default()));
    }
}
