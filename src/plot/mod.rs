//! Labelled figures as PNG, with no plotting dependency: a [`Canvas`] with our own bitmap
//! [`font`], [`Colormap`]s, and [`Figure`]s of image [`Panel`]s laid out in a grid, each with
//! a title, axes with tick labels and units, and a colour bar; plus [`central_slices`] of a
//! volume for the usual three orthogonal views of a crystal.

pub mod canvas;
pub mod colormap;
pub mod figure;
pub mod font;
pub mod slices;

pub use canvas::{Align, Canvas};
pub use colormap::Colormap;
pub use figure::{nice_ticks, Figure, Panel, Tick};
pub use slices::{central_slices, Slice};
