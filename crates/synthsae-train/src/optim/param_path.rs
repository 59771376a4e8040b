//! Parameters keyed by their path in the module (`Standard.W_enc`): the key
//! of the optimizer's moments, stable across reloads (unlike parameter ids).

use std::collections::BTreeMap;

use burn::module::{AutodiffModule, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;

/// The update of one float parameter, given its path.
pub(super) trait UpdateParam<B: AutodiffBackend> {
    /// The new value (untracked) of parameter `id` at `path`, or the tensor
    /// back unchanged when the parameter is not updated (no gradient).
    fn update<const D: usize>(
        &mut self,
        path: &[String],
        id: ParamId,
        tensor: Tensor<B, D>,
    ) -> Result<Tensor<B::InnerBackend, D>, Tensor<B, D>>;
}

/// Walks a module with an [`UpdateParam`], tracking the parameter path and
/// keeping each updated parameter's `require_grad`.
pub(super) struct PathMapper<U> {
    pub(super) update: U,
    path: Vec<String>,
}

impl<U> PathMapper<U> {
    pub(super) fn new(update: U) -> Self {
        Self {
            update,
            path: Vec::new(),
        }
    }
}

impl<B: AutodiffBackend, U: UpdateParam<B>> ModuleMapper<B> for PathMapper<U> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (id, tensor, mapper) = param.consume();
        let require_grad = tensor.is_require_grad();
        match self.update.update(&self.path, id, tensor) {
            Err(tensor) => Param::from_mapped_value(id, tensor, mapper),
            Ok(inner) => {
                let mut tensor = Tensor::from_inner(inner);
                if require_grad {
                    tensor = tensor.require_grad();
                }
                Param::from_mapped_value(id, tensor, mapper)
            }
        }
    }
}

/// The moment key of the parameter at `path`.
pub(super) fn key(path: &[String]) -> String {
    path.join(".")
}

/// Number of entries of every float parameter of `module`, by moment key.
pub(super) fn param_sizes<B: AutodiffBackend, M: AutodiffModule<B>>(
    module: &M,
) -> BTreeMap<String, usize> {
    let mut sizes = SizeVisitor {
        path: Vec::new(),
        sizes: BTreeMap::new(),
    };
    module.visit(&mut sizes);
    sizes.sizes
}

struct SizeVisitor {
    path: Vec<String>,
    sizes: BTreeMap<String, usize>,
}

impl<B: Backend> ModuleVisitor<B> for SizeVisitor {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        self.sizes
            .insert(key(&self.path), param.shape().num_elements());
    }
}
