//! ONNX builders for the text family: `StringNormalizer` (10),
//! `StringConcat`, `StringSplit`, `RegexFullMatch` (20), `TfIdfVectorizer` (9).

use uniml_core::ops::text::normalizer::{CaseChange, StringNormalizer};
use uniml_core::ops::text::regex_match::RegexFullMatch;
use uniml_core::ops::text::strings::{StringConcat, StringSplit};
use uniml_core::ops::text::tfidf::{NgramPool, TfIdfMode, TfIdfVectorizer};
use uniml_core::Op;
use uniml_data::{Error, Result};

use crate::node_ctx::{Builder, NodeCtx};

pub const OPS: &[(&str, Builder)] = &[
    ("StringNormalizer", string_normalizer),
    ("StringConcat", string_concat),
    ("StringSplit", string_split),
    ("RegexFullMatch", regex_full_match),
    ("TfIdfVectorizer", tfidf_vectorizer),
];

fn string_normalizer(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    let case_change = match ctx.string_or("case_change_action", "NONE").as_str() {
        "NONE" => CaseChange::None,
        "LOWER" => CaseChange::Lower,
        "UPPER" => CaseChange::Upper,
        a => {
            return Err(ctx.invalid(format!(
                "case_change_action '{a}' is not one of NONE, LOWER, UPPER"
            )))
        }
    };
    let case_sensitive = ctx.int_or("is_case_sensitive", 0) != 0;
    if let Some(locale) = ctx.string("locale") {
        let l = locale.to_ascii_lowercase();
        if !(l.is_empty() || l == "c" || l == "posix" || l.starts_with("en")) {
            return Err(ctx.unsupported(format!(
                "locale '{locale}' (only the default Unicode case mapping is supported)"
            )));
        }
    }
    let stopwords = ctx.strings("stopwords").unwrap_or_default();
    Ok(Box::new(StringNormalizer::new(
        case_change,
        case_sensitive,
        &stopwords,
    )))
}

/// The bare message of a core error (without the "shape error:" prefix).
fn message(e: Error) -> String {
    match e {
        Error::Shape(m) => m,
        other => other.to_string(),
    }
}

fn string_concat(_ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    Ok(Box::new(StringConcat))
}

fn string_split(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    let delimiter = ctx.string("delimiter").filter(|d| !d.is_empty());
    let maxsplit = match ctx.int("maxsplit") {
        None => None,
        Some(m) if m < 0 => None,
        Some(m) => Some(m as usize),
    };
    Ok(Box::new(StringSplit {
        delimiter,
        maxsplit,
    }))
}

fn regex_full_match(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    let pattern = ctx
        .string("pattern")
        .ok_or_else(|| ctx.invalid("attribute pattern is required"))?;
    let op = RegexFullMatch::new(&pattern).map_err(|e| ctx.invalid(message(e)))?;
    Ok(Box::new(op))
}

fn uints(ctx: &NodeCtx, name: &str) -> Result<Vec<usize>> {
    let v = ctx.ints(name).unwrap_or_default();
    v.iter()
        .map(|&x| {
            usize::try_from(x).map_err(|_| {
                ctx.invalid(format!("attribute {name} must be non-negative, got {v:?}"))
            })
        })
        .collect()
}

fn tfidf_vectorizer(ctx: &NodeCtx) -> Result<Box<dyn Op>> {
    let mode = match ctx.string("mode").as_deref() {
        Some("TF") => TfIdfMode::Tf,
        Some("IDF") => TfIdfMode::Idf,
        Some("TFIDF") => TfIdfMode::TfIdf,
        m => return Err(ctx.invalid(format!("mode must be TF, IDF or TFIDF, got {m:?}"))),
    };
    let int = |name: &str| -> Result<usize> {
        let v = ctx
            .int(name)
            .ok_or_else(|| ctx.invalid(format!("attribute {name} is required")))?;
        usize::try_from(v)
            .map_err(|_| ctx.invalid(format!("attribute {name} must be non-negative, got {v}")))
    };
    let pool = match (ctx.ints("pool_int64s"), ctx.strings("pool_strings")) {
        (Some(v), None) => NgramPool::Ints(v),
        (None, Some(s)) => NgramPool::Strings(s),
        _ => return Err(ctx.invalid("exactly one of pool_int64s and pool_strings must be given")),
    };
    let op = TfIdfVectorizer::new(
        mode,
        int("min_gram_length")?,
        int("max_gram_length")?,
        int("max_skip_count")?,
        uints(ctx, "ngram_counts")?,
        uints(ctx, "ngram_indexes")?,
        ctx.floats("weights").unwrap_or_default(),
        pool,
    )
    .map_err(|e| ctx.invalid(message(e)))?;
    Ok(Box::new(op))
}
