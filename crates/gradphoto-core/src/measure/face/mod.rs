//! The person in the photo: faces (BlazeFace), landmarks (FaceMesh), the person mask (selfie segmentation), and
//! the framing they give in the registered rendering.

pub mod detect;
pub mod geometry;
pub mod mesh;
pub mod models;
pub mod pyramid;
pub mod segment;
