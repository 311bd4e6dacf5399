//! no_std check.
