mod codec;
mod sim;
