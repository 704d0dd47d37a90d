//! Element-wise unary and binary operations, activations included.

pub mod cpu;
pub mod opencl;

/// A unary element-wise operation; parameters travel inside the variant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum UnaryOp {
    /// `-x`
    Neg,
    /// `exp(x)`
    Exp,
    /// `ln(x)`
    Log,
    /// `ln(1 + x)`
    Log1p,
    /// `sqrt(x)`
    Sqrt,
    /// `|x|`
    Abs,
    /// `x^2`
    Square,
    /// `1 / x`
    Recip,
    /// `max(x, 0)`
    Relu,
    /// `x` for `x > 0`, else `slope * x`
    LeakyRelu(f32),
    /// `1 / (1 + exp(-x))`
    Sigmoid,
    /// `1 / (1 + exp(-a x))`
    ScaledSigmoid(f32),
    /// `tanh(x)`
    Tanh,
    /// `sin(x)`
    Sin,
    /// `cos(x)`
    Cos,
    /// `x + c`
    AddScalar(f32),
    /// `c * x`
    MulScalar(f32),
    /// `min(max(x, lo), hi)`; the gradient is 1 strictly inside.
    Clamp(f32, f32),
}

impl UnaryOp {
    /// The value of the op at `x`.
    #[inline(always)]
    pub fn apply(self, x: f32) -> f32 {
        match self {
            UnaryOp::Neg => -x,
            UnaryOp::Exp => x.exp(),
            UnaryOp::Log => x.ln(),
            UnaryOp::Log1p => x.ln_1p(),
            UnaryOp::Sqrt => x.sqrt(),
            UnaryOp::Abs => x.abs(),
            UnaryOp::Square => x * x,
            UnaryOp::Recip => 1.0 / x,
            UnaryOp::Relu => x.max(0.0),
            UnaryOp::LeakyRelu(s) => {
                if x > 0.0 {
                    x
                } else {
                    s * x
                }
            }
            UnaryOp::Sigmoid => sigmoid(x),
            UnaryOp::ScaledSigmoid(a) => sigmoid(a * x),
            UnaryOp::Tanh => x.tanh(),
            UnaryOp::Sin => x.sin(),
            UnaryOp::Cos => x.cos(),
            UnaryOp::AddScalar(c) => x + c,
            UnaryOp::MulScalar(c) => c * x,
            UnaryOp::Clamp(lo, hi) => x.max(lo).min(hi),
        }
    }

    /// The derivative of the op at `x`.
    #[inline(always)]
    pub fn derivative(self, x: f32) -> f32 {
        match self {
            UnaryOp::Neg => -1.0,
            UnaryOp::Exp => x.exp(),
            UnaryOp::Log => 1.0 / x,
            UnaryOp::Log1p => 1.0 / (1.0 + x),
            UnaryOp::Sqrt => 0.5 / x.sqrt(),
            UnaryOp::Abs => {
                if x > 0.0 {
                    1.0
                } else if x < 0.0 {
                    -1.0
                } else {
                    0.0
                }
            }
            UnaryOp::Square => 2.0 * x,
            UnaryOp::Recip => -1.0 / (x * x),
            UnaryOp::Relu => {
                if x > 0.0 {
                    1.0
                } else {
                    0.0
                }
            }
            UnaryOp::LeakyRelu(s) => {
                if x > 0.0 {
                    1.0
                } else {
                    s
                }
            }
            UnaryOp::Sigmoid => {
                let s = sigmoid(x);
                s * (1.0 - s)
            }
            UnaryOp::ScaledSigmoid(a) => {
                let s = sigmoid(a * x);
                a * s * (1.0 - s)
            }
            UnaryOp::Tanh => {
                let t = x.tanh();
                1.0 - t * t
            }
            UnaryOp::Sin => x.cos(),
            UnaryOp::Cos => -x.sin(),
            UnaryOp::AddScalar(_) => 1.0,
            UnaryOp::MulScalar(c) => c,
            UnaryOp::Clamp(lo, hi) => {
                if x > lo && x < hi {
                    1.0
                } else {
                    0.0
                }
            }
        }
    }

    /// The integer code and the two parameters used by the OpenCL kernels.
    pub fn code(self) -> (i32, f32, f32) {
        match self {
            UnaryOp::Neg => (0, 0.0, 0.0),
            UnaryOp::Exp => (1, 0.0, 0.0),
            UnaryOp::Log => (2, 0.0, 0.0),
            UnaryOp::Log1p => (3, 0.0, 0.0),
            UnaryOp::Sqrt => (4, 0.0, 0.0),
            UnaryOp::Abs => (5, 0.0, 0.0),
            UnaryOp::Square => (6, 0.0, 0.0),
            UnaryOp::Recip => (7, 0.0, 0.0),
            UnaryOp::Relu => (8, 0.0, 0.0),
            UnaryOp::LeakyRelu(s) => (9, s, 0.0),
            UnaryOp::Sigmoid => (10, 1.0, 0.0),
            UnaryOp::ScaledSigmoid(a) => (10, a, 0.0),
            UnaryOp::Tanh => (11, 0.0, 0.0),
            UnaryOp::Sin => (12, 0.0, 0.0),
            UnaryOp::Cos => (13, 0.0, 0.0),
            UnaryOp::AddScalar(c) => (14, c, 0.0),
            UnaryOp::MulScalar(c) => (15, c, 0.0),
            UnaryOp::Clamp(lo, hi) => (16, lo, hi),
        }
    }
}

#[inline(always)]
fn sigmoid(x: f32) -> f32 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// A binary element-wise operation with numpy broadcasting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOp {
    /// `a + b`
    Add,
    /// `a - b`
    Sub,
    /// `a * b`
    Mul,
    /// `a / b`
    Div,
}

impl BinaryOp {
    /// The value of the op.
    #[inline(always)]
    pub fn apply(self, a: f32, b: f32) -> f32 {
        match self {
            BinaryOp::Add => a + b,
            BinaryOp::Sub => a - b,
            BinaryOp::Mul => a * b,
            BinaryOp::Div => a / b,
        }
    }

    /// The integer code used by the OpenCL kernels.
    pub fn code(self) -> i32 {
        match self {
            BinaryOp::Add => 0,
            BinaryOp::Sub => 1,
            BinaryOp::Mul => 2,
            BinaryOp::Div => 3,
        }
    }
}

/// The broadcast shape of two shapes of equal rank, or `None` when they are incompatible.
pub fn broadcast_shape(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    if a.len() != b.len() {
        return None;
    }
    a.iter()
        .zip(b)
        .map(|(&x, &y)| match (x, y) {
            (x, y) if x == y => Some(x),
            (1, y) => Some(y),
            (x, 1) => Some(x),
            _ => None,
        })
        .collect()
}

/// Row-major strides of `shape` with 0 on broadcast (size-1) axes of an operand.
pub fn broadcast_strides(shape: &[usize], out_shape: &[usize]) -> Vec<usize> {
    let mut strides = vec![0; shape.len()];
    let mut acc = 1;
    for d in (0..shape.len()).rev() {
        strides[d] = if shape[d] == 1 && out_shape[d] != 1 {
            0
        } else {
            acc
        };
        acc *= shape[d];
    }
    strides
}
