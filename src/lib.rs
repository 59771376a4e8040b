pub use synthsae_data as data;
