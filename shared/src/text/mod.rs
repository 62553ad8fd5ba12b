pub mod minilm;
