mod codec;
mod core;
mod safety;
mod sim;
mod twins;
