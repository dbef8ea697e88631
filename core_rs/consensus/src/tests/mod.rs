mod codec;
mod core;
mod overflow;
mod safety;
mod sim;
mod twins;
