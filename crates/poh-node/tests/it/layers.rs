//! poh-node's layers run one way. `lib.rs` declares the top-level modules from the bottom up;
//! a file may name its own top-level module or one declared below it, never one above. This
//! reads every file of `src/`, resolves each `use` tree (grouped and nested ones too) and each
//! `crate::…` or `super::…` path in code, and fails naming every file and path that reaches up.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::{Path, PathBuf},
};

#[test]
fn every_import_points_down_or_sideways() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let layers = Layers::of_lib(&read(&src.join("lib.rs")));
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut ups = Vec::new();
    let mut between = BTreeMap::<(usize, usize), usize>::new();
    for file in &files {
        let name = file.strip_prefix(&src).unwrap().display().to_string();
        let module = module_of(&name);
        for import in layers.imports(&name, &module, &read(file)) {
            if import.from != import.to {
                *between.entry((import.from, import.to)).or_default() += 1;
            }
            if import.from < import.to {
                ups.push(format!(
                    "src/{name}: {} ({} → {})",
                    import.path, layers.order[import.from], layers.order[import.to]
                ));
            }
        }
    }
    // Seen with --nocapture: how much each layer leans on the ones below.
    println!("imports between layers (from → to: distinct paths per file):");
    for ((from, to), count) in &between {
        println!("  {} → {}: {count}", layers.order[*from], layers.order[*to]);
    }
    assert!(
        ups.is_empty(),
        "{} imports point to a higher layer (order, bottom first: {}):\n{}",
        ups.len(),
        layers.order.join(", "),
        ups.join("\n")
    );
}

/// The parser must see through groups, nesting, `super` and paths in code, and must not read
/// comments or strings; otherwise the test above could pass on a tree that breaks the rule.
#[test]
fn the_check_catches_grouped_nested_and_inline_upward_paths() {
    let layers = Layers::of_lib(
        "mod error;\nmod wire;\nmod pipeline;\nmod ingress;\npub use error::NodeError;\n",
    );
    let source = r##"
        use crate::{error::Kind, pipeline::{Rejected, committer::{Full, Part as P}}};
        use super::ingress::*;
        pub(crate) fn f() -> crate::NodeError { crate::ingress::serve::<u8>() }
        mod tests {
            use super::{json, super::pipeline::Pending};
        }
        // crate::ingress::in_a_comment
        /* crate::ingress::in_a /* nested */ crate::ingress::block */
        const S: &str = "crate::ingress::in_a_string \" crate::ingress::escaped";
        const R: &str = r#"crate::ingress::in_a_raw_string"#;
        fn g<'a>(c: &'a char) -> [char; 2] { ['"', '\''] }
        macro_rules! m { () => { $crate::ingress::x() } }
    "##;
    let ups: Vec<String> = layers
        .imports("wire/mod.rs", &module_of("wire/mod.rs"), source)
        .into_iter()
        .filter(|import| import.from < import.to)
        .map(|import| import.path)
        .collect();
    assert_eq!(
        ups,
        [
            "crate::pipeline::Rejected",
            "crate::pipeline::committer::Full",
            "crate::pipeline::committer::Part",
            "super::ingress::*",
            "crate::ingress::serve",
            "super::super::pipeline::Pending",
            "crate::ingress::x",
        ]
    );
}

/// The order of the top-level modules and what the crate root re-exports from each.
struct Layers {
    /// Bottom first, as `lib.rs` declares them.
    order: Vec<String>,
    /// A name `lib.rs` re-exports, and the top-level module it comes from.
    reexports: BTreeMap<String, String>,
}

/// One path a file names in another module, or its own.
struct Import {
    /// As written, with a group's prefix put in front.
    path: String,
    /// The layers of the file and of what it names.
    from: usize,
    to: usize,
}

impl Layers {
    fn of_lib(lib: &str) -> Self {
        let tokens = tokens(lib);
        let mut order = Vec::new();
        let mut reexports = BTreeMap::new();
        for (i, token) in tokens.iter().enumerate() {
            match (token, tokens.get(i + 1), tokens.get(i + 2)) {
                (Token::Ident(kw), Some(Token::Ident(name)), Some(Token::Punct(";")))
                    if kw == "mod" =>
                {
                    order.push(name.clone());
                }
                (Token::Ident(kw), ..) if kw == "use" => {
                    let mut leaves = Vec::new();
                    use_tree(&tokens, i + 1, Vec::new(), &mut leaves);
                    for mut leaf in leaves {
                        if leaf.path[0] == "crate" {
                            leaf.path.remove(0);
                        }
                        reexports.insert(leaf.name, leaf.path[0].clone());
                    }
                }
                _ => {}
            }
        }
        Self { order, reexports }
    }

    /// Every path in `source` (the file `name`, module `module`) that starts at the crate
    /// root or climbs with `super`, resolved to the layer it names.
    fn imports(&self, name: &str, module: &[String], source: &str) -> Vec<Import> {
        let top = self.order.len();
        let from = match module.first() {
            None => top,
            Some(own) => self.rank(own).unwrap_or_else(|| {
                panic!("src/{name}: module {own} is not declared in lib.rs's order")
            }),
        };
        let mut seen = BTreeSet::new();
        let mut imports = Vec::new();
        for (here, path) in paths(&tokens(source), module) {
            let Some(absolute) = resolve(&here, &path) else {
                continue;
            };
            let to = match absolute.first() {
                Some(first) => self.rank(first).unwrap_or(top),
                None => top,
            };
            let path = path.join("::");
            if seen.insert(path.clone()) {
                imports.push(Import { path, from, to });
            }
        }
        imports
    }

    /// Where a name at the crate root sits: a module's own place, or that of the module a
    /// re-export comes from. Anything else is defined in lib.rs, above every layer.
    fn rank(&self, root_name: &str) -> Option<usize> {
        let module = self
            .reexports
            .get(root_name)
            .map_or(root_name, String::as_str);
        self.order.iter().position(|m| m == module)
    }
}

/// `wire/json.rs` → `wire::json`; `wire/mod.rs` → `wire`; `lib.rs` → the root.
fn module_of(file: &str) -> Vec<String> {
    let mut module: Vec<String> = file
        .trim_end_matches(".rs")
        .split('/')
        .map(str::to_owned)
        .collect();
    if module
        .last()
        .is_some_and(|last| last == "mod" || last == "lib")
    {
        module.pop();
    }
    module
}

/// `path` from the crate root, if it starts there or climbs to it with `super`; `None` for
/// other crates and `self` paths, which stay where they are.
fn resolve(here: &[String], path: &[String]) -> Option<Vec<String>> {
    let first = path.first()?;
    if first == "crate" {
        return Some(path[1..].to_vec());
    }
    if first != "super" {
        return None;
    }
    let climbs = path.iter().take_while(|s| *s == "super").count();
    let kept = here.len().checked_sub(climbs)?;
    Some(
        here[..kept]
            .iter()
            .chain(&path[climbs..])
            .cloned()
            .collect(),
    )
}

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Ident(String),
    Punct(&'static str),
    Other,
}

/// The identifiers and the punctuation a path is made of; comments, strings, characters,
/// lifetimes and numbers are dropped or become [`Token::Other`].
fn tokens(source: &str) -> Vec<Token> {
    let chars: Vec<char> = source.chars().collect();
    let at = |i: usize| chars.get(i).copied().unwrap_or('\0');
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '/' && at(i + 1) == '/' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && at(i + 1) == '*' {
            let mut depth = 0;
            loop {
                if at(i) == '/' && at(i + 1) == '*' {
                    depth += 1;
                    i += 2;
                } else if at(i) == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else if i >= chars.len() {
                    break;
                } else {
                    i += 1;
                }
            }
        } else if c == '"' {
            i = past_string(&chars, i + 1);
            tokens.push(Token::Other);
        } else if c == '\'' {
            if at(i + 1) == '\\' {
                // '\n', '\'', '\u{…}': the escaped character cannot end it.
                i += 3;
                while i < chars.len() && chars[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if at(i + 2) == '\'' {
                i += 3;
            } else {
                // A lifetime: its name is no path segment.
                i += 1;
                while at(i).is_alphanumeric() || at(i) == '_' {
                    i += 1;
                }
            }
            tokens.push(Token::Other);
        } else if c.is_alphanumeric() || c == '_' {
            let start = i;
            while at(i).is_alphanumeric() || at(i) == '_' {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let raw = matches!(word.as_str(), "r" | "br" | "cr");
            if raw && (at(i) == '"' || (at(i) == '#' && matches!(at(i + 1), '#' | '"'))) {
                let mut hashes = 0;
                while at(i) == '#' {
                    hashes += 1;
                    i += 1;
                }
                i += 1;
                loop {
                    if i >= chars.len()
                        || (chars[i] == '"' && (1..=hashes).all(|h| at(i + h) == '#'))
                    {
                        break;
                    }
                    i += 1;
                }
                i += 1 + hashes;
                tokens.push(Token::Other);
            } else if matches!(word.as_str(), "b" | "c") && at(i) == '"' {
                i = past_string(&chars, i + 1);
                tokens.push(Token::Other);
            } else if word == "b" && at(i) == '\'' {
                i += if at(i + 1) == '\\' { 4 } else { 3 };
                while at(i - 1) != '\'' {
                    i += 1;
                }
                tokens.push(Token::Other);
            } else if word == "r" && at(i) == '#' {
                // A raw identifier, r#type.
                i += 1;
                let start = i;
                while at(i).is_alphanumeric() || at(i) == '_' {
                    i += 1;
                }
                tokens.push(Token::Ident(chars[start..i].iter().collect()));
            } else if c.is_ascii_digit() {
                tokens.push(Token::Other);
            } else {
                tokens.push(Token::Ident(word));
            }
        } else if c == ':' && at(i + 1) == ':' {
            tokens.push(Token::Punct("::"));
            i += 2;
        } else {
            tokens.push(match c {
                '{' => Token::Punct("{"),
                '}' => Token::Punct("}"),
                ',' => Token::Punct(","),
                ';' => Token::Punct(";"),
                '*' => Token::Punct("*"),
                _ => Token::Other,
            });
            i += 1;
        }
    }
    tokens
}

/// The index just past the closing quote of a string whose body starts at `i`.
fn past_string(chars: &[char], mut i: usize) -> usize {
    while i < chars.len() && chars[i] != '"' {
        i += if chars[i] == '\\' { 2 } else { 1 };
    }
    i + 1
}

/// One leaf of a `use` tree: the whole path, and the name it brings in.
struct Leaf {
    path: Vec<String>,
    name: String,
}

/// Parses the `use` tree starting at `i` under `prefix`, adding its leaves; returns the index
/// after it.
fn use_tree(tokens: &[Token], mut i: usize, prefix: Vec<String>, leaves: &mut Vec<Leaf>) -> usize {
    let mut path = prefix;
    let mut alias = None;
    loop {
        match tokens.get(i) {
            Some(Token::Punct("::")) => i += 1,
            Some(Token::Ident(word)) if word == "as" => {
                if let Some(Token::Ident(name)) = tokens.get(i + 1) {
                    alias = Some(name.clone());
                }
                i += 2;
            }
            Some(Token::Ident(segment)) => {
                path.push(segment.clone());
                i += 1;
            }
            Some(Token::Punct("{")) => {
                i += 1;
                while !matches!(tokens.get(i), None | Some(Token::Punct("}"))) {
                    i = use_tree(tokens, i, path.clone(), leaves);
                    if tokens.get(i) == Some(&Token::Punct(",")) {
                        i += 1;
                    }
                }
                return i + 1;
            }
            Some(Token::Punct("*")) => {
                path.push("*".into());
                i += 1;
                break;
            }
            _ => break,
        }
    }
    if path.last().is_some_and(|last| last == "self") {
        path.pop();
    }
    if let Some(last) = path.last() {
        let name = alias.unwrap_or_else(|| last.clone());
        leaves.push(Leaf { path, name });
    }
    i
}

/// Every path in the token stream that could leave the module: `use` leaves, and paths in
/// code that start with `crate` or `super`; each with the module it is written in (`module`,
/// deepened by inline `mod x { … }` blocks).
fn paths(tokens: &[Token], module: &[String]) -> Vec<(Vec<String>, Vec<String>)> {
    let mut found = Vec::new();
    let mut here = module.to_vec();
    // The brace depth at which each inline module opened.
    let mut inline = Vec::new();
    let mut depth = 0;
    let mut i = 0;
    while i < tokens.len() {
        let before = i.checked_sub(1).and_then(|b| tokens.get(b));
        match &tokens[i] {
            Token::Ident(kw) if kw == "use" => {
                let mut leaves = Vec::new();
                i = use_tree(tokens, i + 1, Vec::new(), &mut leaves);
                found.extend(leaves.into_iter().map(|leaf| (here.clone(), leaf.path)));
                continue;
            }
            Token::Ident(kw) if kw == "mod" => {
                if let (Some(Token::Ident(name)), Some(Token::Punct("{"))) =
                    (tokens.get(i + 1), tokens.get(i + 2))
                {
                    here.push(name.clone());
                    depth += 1;
                    inline.push(depth);
                    i += 3;
                    continue;
                }
            }
            Token::Ident(start)
                if (start == "crate" || start == "super")
                    && tokens.get(i + 1) == Some(&Token::Punct("::"))
                    && before != Some(&Token::Punct("::")) =>
            {
                let mut path = vec![start.clone()];
                i += 1;
                while let (Some(Token::Punct("::")), Some(Token::Ident(segment))) =
                    (tokens.get(i), tokens.get(i + 1))
                {
                    path.push(segment.clone());
                    i += 2;
                }
                found.push((here.clone(), path));
                continue;
            }
            Token::Punct("{") => depth += 1,
            Token::Punct("}") => {
                if inline.last() == Some(&depth) {
                    inline.pop();
                    here.pop();
                }
                depth -= 1;
            }
            _ => {}
        }
        i += 1;
    }
    found
}

fn rust_files(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files.sort();
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
