//! The native CPU backend: host `Vec<f32>` storage, ndarray/rayon code from `ops/*/cpu.rs`.

use super::{Backend, Storage};
use crate::ops::conv::ConvGeometry;
use crate::ops::copy::AxisCopy;
use crate::ops::elementwise::{BinaryOp, UnaryOp};
use crate::ops::filter::AxisFilter;
use crate::ops::optim::{AdamHyper, SgdHyper};
use crate::ops::pool::PoolGeometry;
use crate::ops::resample::UpsampleGeometry;
use crate::ops::{conv, copy, elementwise, filter, optim, pool, reduce, resample};
use crate::Result;

/// The native CPU backend (multi-threaded with rayon).
#[derive(Debug, Default)]
pub struct CpuBackend;

impl Backend for CpuBackend {
    fn name(&self) -> String {
        format!("cpu ({} threads)", rayon::current_num_threads())
    }

    fn upload(&self, data: &[f32]) -> Result<Storage> {
        Ok(Storage::Cpu(data.to_vec()))
    }

    fn download(&self, s: &Storage) -> Result<Vec<f32>> {
        Ok(s.cpu("download")?.to_vec())
    }

    fn full(&self, len: usize, value: f32) -> Result<Storage> {
        Ok(Storage::Cpu(crate::ops::alloc::filled(len, value)))
    }

    fn for_overwrite(&self, len: usize) -> Result<Storage> {
        Ok(Storage::Cpu(crate::ops::alloc::for_overwrite(len)))
    }

    fn unary(&self, op: UnaryOp, x: &Storage) -> Result<Storage> {
        Ok(Storage::Cpu(elementwise::cpu::unary(op, x.cpu("unary")?)))
    }

    fn unary_backward(&self, op: UnaryOp, x: &Storage, gy: &Storage) -> Result<Storage> {
        Ok(Storage::Cpu(elementwise::cpu::unary_backward(
            op,
            x.cpu("unary_backward")?,
            gy.cpu("unary_backward")?,
        )))
    }

    fn binary(
        &self,
        op: BinaryOp,
        a: &Storage,
        a_shape: &[usize],
        b: &Storage,
        b_shape: &[usize],
        out_shape: &[usize],
    ) -> Result<Storage> {
        Ok(Storage::Cpu(elementwise::cpu::binary(
            op,
            a.cpu("binary")?,
            a_shape,
            b.cpu("binary")?,
            b_shape,
            out_shape,
        )))
    }

    fn sum_axes(&self, x: &Storage, shape: &[usize], axes: &[usize]) -> Result<Storage> {
        Ok(Storage::Cpu(reduce::cpu::sum_axes(
            x.cpu("sum")?,
            shape,
            axes,
        )))
    }

    fn conv_forward(
        &self,
        x: &Storage,
        w: &Storage,
        bias: Option<&Storage>,
        g: &ConvGeometry,
    ) -> Result<Storage> {
        let bias = bias.map(|b| b.cpu("conv")).transpose()?;
        Ok(Storage::Cpu(conv::cpu::forward(
            x.cpu("conv")?,
            w.cpu("conv")?,
            bias,
            g,
        )))
    }

    fn conv_forward_leaky_relu(
        &self,
        x: &Storage,
        w: &Storage,
        bias: Option<&Storage>,
        slope: f32,
        g: &ConvGeometry,
    ) -> Result<Storage> {
        const OP: &str = "conv_leaky_relu";
        let bias = bias.map(|b| b.cpu(OP)).transpose()?;
        Ok(Storage::Cpu(conv::cpu::forward_leaky_relu(
            x.cpu(OP)?,
            w.cpu(OP)?,
            bias,
            Some(slope),
            g,
        )))
    }

    fn conv_backward_data(&self, gy: &Storage, w: &Storage, g: &ConvGeometry) -> Result<Storage> {
        Ok(Storage::Cpu(conv::cpu::backward_data(
            gy.cpu("conv_backward_data")?,
            w.cpu("conv_backward_data")?,
            g,
        )))
    }

    fn conv_backward_weight(&self, x: &Storage, gy: &Storage, g: &ConvGeometry) -> Result<Storage> {
        Ok(Storage::Cpu(conv::cpu::backward_weight(
            x.cpu("conv_backward_weight")?,
            gy.cpu("conv_backward_weight")?,
            g,
        )))
    }

    fn maxpool_forward(&self, x: &Storage, g: &PoolGeometry) -> Result<(Storage, Storage)> {
        let (y, arg) = pool::cpu::forward(x.cpu("max_pool")?, g);
        Ok((Storage::Cpu(y), Storage::Cpu(arg)))
    }

    fn maxpool_backward(
        &self,
        gy: &Storage,
        argmax: &Storage,
        g: &PoolGeometry,
    ) -> Result<Storage> {
        Ok(Storage::Cpu(pool::cpu::backward(
            gy.cpu("max_pool_backward")?,
            argmax.cpu("max_pool_backward")?,
            g,
        )))
    }

    fn upsample_forward(&self, x: &Storage, g: &UpsampleGeometry) -> Result<Storage> {
        Ok(Storage::Cpu(resample::cpu::forward(x.cpu("upsample")?, g)))
    }

    fn upsample_backward(&self, gy: &Storage, g: &UpsampleGeometry) -> Result<Storage> {
        Ok(Storage::Cpu(resample::cpu::backward(
            gy.cpu("upsample_backward")?,
            g,
        )))
    }

    fn copy_axis(&self, src: &Storage, dst: &mut Storage, c: &AxisCopy) -> Result<()> {
        copy::cpu::copy_axis(src.cpu("copy_axis")?, dst.cpu_mut("copy_axis")?, c);
        Ok(())
    }

    fn filter_axis(&self, x: &Storage, f: &AxisFilter) -> Result<Storage> {
        Ok(Storage::Cpu(filter::cpu::filter_axis(
            x.cpu("filter_axis")?,
            f,
        )))
    }

    fn adam_step(
        &self,
        param: &mut Storage,
        grad: &Storage,
        m: &mut Storage,
        v: &mut Storage,
        h: &AdamHyper,
    ) -> Result<()> {
        optim::cpu::adam_step(
            param.cpu_mut("adam")?,
            grad.cpu("adam")?,
            m.cpu_mut("adam")?,
            v.cpu_mut("adam")?,
            h,
        );
        Ok(())
    }

    fn sgd_step(
        &self,
        param: &mut Storage,
        grad: &Storage,
        velocity: &mut Storage,
        h: &SgdHyper,
    ) -> Result<()> {
        optim::cpu::sgd_step(
            param.cpu_mut("sgd")?,
            grad.cpu("sgd")?,
            velocity.cpu_mut("sgd")?,
            h,
        );
        Ok(())
    }
}
