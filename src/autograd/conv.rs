//! Autograd for the convolutions (NCHW; Conv2d weight [out, in, kh, kw], ConvTranspose2d
//! weight [in, out, kh, kw]; spec §2.4 decoder, §4.1 FDM): one tape node each, whose backward
//! rule computes only the gradients its inputs need (the first layer's image input gets no dx).

use super::tape::{Tape, Var};
use crate::error::Result;
use crate::ops::conv as cv;

/// `conv2d(x, w, b, stride, padding)` on the tape.
pub fn conv2d(tape: &Tape, x: &Var, w: &Var, b: Option<&Var>, stride: usize, padding: usize) -> Result<Var> {
    let y = cv::conv2d(x.value(), w.value(), b.map(|b| b.value()), stride, padding)?;
    let w_for_dx = x.requires_grad().then(|| w.value().clone());
    let x_for_dw = w.requires_grad().then(|| x.value().clone());
    let need_b = b.map(|b| b.requires_grad());
    let (x_shape, w_shape) = (x.shape().to_vec(), w.shape().to_vec());
    let mut inputs = vec![x, w];
    inputs.extend(b);
    Ok(tape.record(
        y,
        &inputs,
        Box::new(move |g| {
            let dx = w_for_dx.as_ref().map(|w| cv::conv2d_backward_input(&x_shape, w, g, stride, padding)).transpose()?;
            let dw = x_for_dw.as_ref().map(|x| cv::conv2d_backward_weight(x, &w_shape, g, stride, padding)).transpose()?;
            let mut grads = vec![dx, dw];
            if let Some(need) = need_b {
                grads.push(if need { Some(cv::conv_backward_bias(g)?) } else { None });
            }
            Ok(grads)
        }),
    ))
}

/// `conv_transpose2d(x, w, b, stride, padding)` on the tape.
pub fn conv_transpose2d(tape: &Tape, x: &Var, w: &Var, b: Option<&Var>, stride: usize, padding: usize) -> Result<Var> {
    let y = cv::conv_transpose2d(x.value(), w.value(), b.map(|b| b.value()), stride, padding)?;
    let w_for_dx = x.requires_grad().then(|| w.value().clone());
    let x_for_dw = w.requires_grad().then(|| x.value().clone());
    let need_b = b.map(|b| b.requires_grad());
    let (x_shape, w_shape) = (x.shape().to_vec(), w.shape().to_vec());
    let mut inputs = vec![x, w];
    inputs.extend(b);
    Ok(tape.record(
        y,
        &inputs,
        Box::new(move |g| {
            let dx = w_for_dx.as_ref().map(|w| cv::conv_transpose2d_backward_input(&x_shape, w, g, stride, padding)).transpose()?;
            let dw = x_for_dw.as_ref().map(|x| cv::conv_transpose2d_backward_weight(x, &w_shape, g, stride, padding)).transpose()?;
            let mut grads = vec![dx, dw];
            if let Some(need) = need_b {
                grads.push(if need { Some(cv::conv_backward_bias(g)?) } else { None });
            }
            Ok(grads)
        }),
    ))
}
