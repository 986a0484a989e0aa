//! `nindub tokenize`: a text's token ids and pieces, as the model's own
//! tokenizer (rebuilt from the GGUF) cuts it; the shape `llama-tokenize`
//! prints: `ID -> 'PIECE'`, one token a line.

use anyhow::{Context, Result};
use clap::Args;
use nindub::assets;
use nindub::model::gguf::GgufFile;
use nindub::model::tokenizer::GgufTokenizer;

#[derive(Args)]
pub struct TokenizeArgs {
    /// A GGUF file, or the name of a cached asset.
    #[arg(long, default_value = "smollm2")]
    model: String,
    /// The text (read from stdin when absent).
    #[arg(long)]
    prompt: Option<String>,
    /// Print only the ids, as a list.
    #[arg(long)]
    ids: bool,
}

pub fn run(args: TokenizeArgs) -> Result<()> {
    let text = match args.prompt {
        Some(p) => p,
        None => std::io::read_to_string(std::io::stdin()).context("reading the text from stdin")?,
    };
    let path = assets::resolve(&args.model)?;
    let tokenizer = GgufTokenizer::from_gguf(&GgufFile::open(&path)?)?;
    let ids = tokenizer.encode(&text)?;
    if args.ids {
        println!("{ids:?}");
        return Ok(());
    }
    for id in &ids {
        println!("{id:>6} -> '{}'", tokenizer.piece(*id));
    }
    eprintln!("nindub: {} tokens", ids.len());
    Ok(())
}
