//! Checks that `include/grim_runtime.h`, the hand-written C header of the
//! runtime, and the functions `src/` exports to C describe the same ABI.
//!
//! The header stays hand-written because it is also the documentation C
//! users read; nothing in the build ties it to the Rust signatures, so this
//! test does, in two independent ways:
//!
//! 1. *By name and spelled type*: a small, strict parser reads every
//!    declaration of the header (it rejects any construct it does not know
//!    rather than guessing), `syn` reads every `#[no_mangle]` /
//!    `#[unsafe(no_mangle)]` function of `src/`, its Rust types are mapped to
//!    C types (`i64` -> `int64_t`, `*const Context` -> `const grim_context*`,
//!    `Option<extern "C" fn(..)>` -> a function pointer, ...) and the two sets
//!    must be equal, prototype by prototype. The functions the header
//!    declares for the compiled model and the runner are the only exception
//!    (`MODEL_PROVIDED_FUNCTIONS`).
//! 2. *By the C compiler*: a generated C file includes the header and
//!    redeclares every exported function with the prototype mapped from
//!    Rust. C (and C++, the header's `extern "C"` path) reject a
//!    redeclaration with incompatible types, so `cc -fsyntax-only` proves the
//!    types agree the way a user's compiler sees them, typedefs included.
//!
//! It also checks that the runtime symbols the compiler's generated code
//! calls, named once in `dialects/src/abi.rs`, are functions the header
//! declares and the runtime exports (the file is parsed as source: the
//! runtime must not depend on other crates), that `GRIM_RUNTIME_VERSION` equals the Rust version string, and,
//! so that the checks cannot silently go blind, that a changed type on
//! either side makes both of them fail.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use quote::ToTokens;

const RUNTIME_DIR: &str = env!("CARGO_MANIFEST_DIR");
const TMP_DIR: &str = env!("CARGO_TARGET_TMPDIR");

/// Functions the header declares that every compiled model object defines
/// (the code generator emits them) and the runner calls. The runtime must
/// *not* export them: its definitions would clash with the model's at link
/// time.
const MODEL_PROVIDED_FUNCTIONS: &[&str] = &["grim_model_describe", "grim_model_run"];

/// Types the header declares only for `MODEL_PROVIDED_FUNCTIONS`: no Rust
/// type stands behind them.
const MODEL_PROVIDED_TYPES: &[&str] = &["grim_model_info"];

/// Rust types that cross the ABI only behind a pointer, and the opaque C
/// typedef that stands for each of them in the header.
const OPAQUE_TYPES: &[(&str, &str)] = &[("Context", "grim_context")];

/// Constants of `dialects/src/abi.rs` naming runtime functions that the
/// generated code calls; they must exist, so the check never passes vacuously.
const COMPILER_CALLS: &[&str] = &["PARALLEL_FOR", "PROFILE_BEGIN", "PROFILE_END"];

// ---------------------------------------------------------------------------
// Prototypes
// ---------------------------------------------------------------------------

/// A function's C types in a canonical spelling (`const float* const*`,
/// `void (*)(void*, int64_t)`), without parameter names.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Proto {
    ret: String,
    params: Vec<String>,
}

impl Proto {
    /// The prototype as a C declaration (parameters unnamed).
    fn c_decl(&self, name: &str) -> String {
        let params = if self.params.is_empty() {
            "void".to_string()
        } else {
            self.params.join(", ")
        };
        format!("{} {name}({params})", self.ret)
    }
}

fn fn_pointer(ret: &str, params: &[String]) -> String {
    let params = if params.is_empty() {
        "void".to_string()
    } else {
        params.join(", ")
    };
    format!("{ret} (*)({params})")
}

// ---------------------------------------------------------------------------
// The header
// ---------------------------------------------------------------------------

/// What the header declares.
#[derive(Debug, Default)]
struct Header {
    functions: BTreeMap<String, Proto>,
    /// `typedef struct x x;`
    opaque_types: BTreeSet<String>,
    /// `typedef struct x { ... } x;`
    struct_types: BTreeSet<String>,
    /// `#define NAME value`, the include guard excluded.
    macros: BTreeMap<String, String>,
}

fn header_path() -> PathBuf {
    Path::new(RUNTIME_DIR).join("include/grim_runtime.h")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Replaces comments by a space, keeping their newlines so that
/// preprocessor lines stay lines; string literals are copied untouched.
fn strip_comments(text: &str) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut prev = ' ';
                loop {
                    match chars.next() {
                        None => return Err("unterminated /* comment".into()),
                        Some('/') if prev == '*' => break,
                        Some(ch) => {
                            if ch == '\n' {
                                out.push('\n');
                            }
                            prev = ch;
                        }
                    }
                }
                out.push(' ');
            }
            '/' if chars.peek() == Some(&'/') => {
                while chars.peek().is_some_and(|&ch| ch != '\n') {
                    chars.next();
                }
            }
            '"' => {
                out.push('"');
                loop {
                    match chars.next() {
                        None | Some('\n') => return Err("unterminated string literal".into()),
                        Some('"') => break,
                        Some('\\') => {
                            return Err("escapes in string literals are not supported".into())
                        }
                        Some(ch) => out.push(ch),
                    }
                }
                out.push('"');
            }
            _ => out.push(c),
        }
    }
    Ok(out)
}

fn is_ident(t: &str) -> bool {
    let mut cs = t.chars();
    cs.next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && cs.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Words that can only be part of a type, never a parameter name: they tell
/// an unnamed parameter (which the header must not have, as the names are
/// documentation) from a named one.
fn is_type_word(t: &str) -> bool {
    matches!(
        t,
        "void"
            | "char"
            | "short"
            | "int"
            | "long"
            | "float"
            | "double"
            | "signed"
            | "unsigned"
            | "const"
            | "volatile"
            | "struct"
            | "_Bool"
            | "bool"
    ) || t.ends_with("_t")
        || t.starts_with("grim_")
}

/// Splits the code (preprocessor lines removed) into tokens: identifiers
/// and the punctuation declarations use. Anything else is an error.
fn tokenize(code: &str) -> Result<Vec<String>, String> {
    let mut toks = Vec::new();
    let mut chars = code.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c.is_whitespace() {
            continue;
        }
        if c.is_ascii_alphabetic() || c == '_' {
            let mut end = i + c.len_utf8();
            while let Some(&(j, d)) = chars.peek() {
                if !(d.is_ascii_alphanumeric() || d == '_') {
                    break;
                }
                end = j + d.len_utf8();
                chars.next();
            }
            toks.push(code[i..end].to_string());
        } else if "*(),;{}".contains(c) {
            toks.push(c.to_string());
        } else {
            return Err(format!(
                "unexpected character {c:?} outside comments and preprocessor lines \
                 (this parser is deliberately small: extend it for new constructs)"
            ));
        }
    }
    Ok(toks)
}

/// Index of the `)` matching the `(` at `open`.
fn matching_paren(toks: &[&str], open: usize) -> Result<usize, String> {
    let mut depth = 0usize;
    for (i, t) in toks.iter().enumerate().skip(open) {
        match *t {
            "(" => depth += 1,
            ")" => {
                depth -= 1;
                if depth == 0 {
                    return Ok(i);
                }
            }
            _ => {}
        }
    }
    Err("unbalanced parentheses".into())
}

/// Canonical spelling of a type made of words and `*`:
/// `const float * const *` -> `const float* const*`.
fn render_type(toks: &[&str]) -> Result<String, String> {
    if toks.is_empty() {
        return Err("missing type".into());
    }
    let mut s = String::new();
    for t in toks {
        if *t == "*" {
            s.push('*');
        } else if is_ident(t) {
            if !s.is_empty() {
                s.push(' ');
            }
            s.push_str(t);
        } else {
            return Err(format!("unexpected `{t}` in a type"));
        }
    }
    Ok(s)
}

/// A parenthesised parameter list's contents.
fn parse_params(toks: &[&str]) -> Result<Vec<String>, String> {
    match toks {
        [] => Err("`()` leaves the parameters unspecified in C before C23; write `(void)`".into()),
        ["void"] => Ok(Vec::new()),
        _ => {
            let mut params = Vec::new();
            let mut depth = 0usize;
            let mut start = 0;
            for (i, t) in toks.iter().enumerate() {
                match *t {
                    "(" => depth += 1,
                    ")" => depth -= 1,
                    "," if depth == 0 => {
                        params.push(parse_param(&toks[start..i])?);
                        start = i + 1;
                    }
                    _ => {}
                }
            }
            params.push(parse_param(&toks[start..])?);
            Ok(params)
        }
    }
}

/// One named parameter: `TYPE name` or `RET (*name)(PARAMS)`.
fn parse_param(toks: &[&str]) -> Result<String, String> {
    let text = toks.join(" ");
    if let Some(open) = toks.iter().position(|t| *t == "(") {
        let close = matching_paren(toks, open)?;
        let named =
            matches!(&toks[open + 1..close], ["*", name] if is_ident(name) && !is_type_word(name));
        let rest = &toks[close + 1..];
        if !named || rest.first() != Some(&"(") || matching_paren(rest, 0)? != rest.len() - 1 {
            return Err(format!(
                "parameter `{text}`: only named function pointers `R (*name)(...)` are supported"
            ));
        }
        let ret = render_type(&toks[..open])?;
        let params = parse_params(&rest[1..rest.len() - 1])
            .map_err(|e| format!("parameter `{text}`: {e}"))?;
        return Ok(fn_pointer(&ret, &params));
    }
    match toks.split_last() {
        Some((name, ty)) if is_ident(name) && !is_type_word(name) && !ty.is_empty() => {
            render_type(ty).map_err(|e| format!("parameter `{text}`: {e}"))
        }
        _ => Err(format!(
            "parameter `{text}` has no name (the header names every parameter, as documentation)"
        )),
    }
}

/// `RET name(PARAMS)`.
fn parse_function(d: &[&str]) -> Result<(String, Proto), String> {
    let text = d.join(" ");
    let open = d
        .iter()
        .position(|t| *t == "(")
        .ok_or_else(|| format!("`{text}`: neither a typedef nor a function prototype"))?;
    let close = matching_paren(d, open)?;
    if close != d.len() - 1 {
        return Err(format!(
            "`{text}`: tokens after the parameter list (a function returning a function \
             pointer, or a variable) are not supported"
        ));
    }
    let head = match d[..open].first() {
        Some(&"extern") => &d[1..open],
        _ => &d[..open],
    };
    let Some((name, ret)) = head.split_last() else {
        return Err(format!("`{text}`: no function name"));
    };
    if !is_ident(name) {
        return Err(format!("`{text}`: `{name}` is not a function name"));
    }
    let ret = render_type(ret).map_err(|e| format!("`{text}`: return type: {e}"))?;
    let params = parse_params(&d[open + 1..close]).map_err(|e| format!("`{name}`: {e}"))?;
    Ok((name.to_string(), Proto { ret, params }))
}

fn parse_header(text: &str) -> Result<Header, String> {
    let stripped = strip_comments(text)?;
    let mut header = Header::default();

    // Preprocessor lines. Allowed: the include guard, `#include`, `#define`
    // of a value, and `#ifdef __cplusplus` blocks holding only the
    // `extern "C" {` / `}` wrapper. The C++ blocks are dropped, which is what
    // a C compiler sees.
    let mut code = String::new();
    let mut guard: Option<String> = None;
    let mut guard_defined = false;
    let mut in_cplusplus = false;
    let mut open_conditionals = 0usize;
    for (n, line) in stripped.lines().enumerate() {
        let at = |msg: String| format!("grim_runtime.h:{}: {msg}", n + 1);
        let t = line.trim();
        if let Some(directive) = t.strip_prefix('#') {
            if t.ends_with('\\') {
                return Err(at("continued preprocessor lines are not supported".into()));
            }
            let directive = directive.trim();
            let (kw, rest) = directive
                .split_once(char::is_whitespace)
                .unwrap_or((directive, ""));
            let rest = rest.trim();
            match kw {
                "ifndef" if guard.is_none() && open_conditionals == 0 => {
                    guard = Some(rest.to_string());
                    open_conditionals += 1;
                }
                "define" if guard.as_deref() == Some(rest) && !guard_defined => {
                    guard_defined = true
                }
                "ifdef" if rest == "__cplusplus" && !in_cplusplus => {
                    in_cplusplus = true;
                    open_conditionals += 1;
                }
                "endif" if open_conditionals > 0 => {
                    open_conditionals -= 1;
                    in_cplusplus = false;
                }
                "include" if !in_cplusplus => {}
                "define" if !in_cplusplus => {
                    let (name, value) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
                    if !is_ident(name) {
                        return Err(at(format!("function-like macro `{name}` is not supported")));
                    }
                    header
                        .macros
                        .insert(name.to_string(), value.trim().to_string());
                }
                _ => return Err(at(format!("unsupported preprocessor line `{t}`"))),
            }
            continue;
        }
        if in_cplusplus {
            if !(t.is_empty() || t == "extern \"C\" {" || t == "}") {
                return Err(at(format!("unexpected C++-only line `{t}`")));
            }
            continue;
        }
        code.push_str(line);
        code.push('\n');
    }
    if open_conditionals != 0 || guard.is_none() || !guard_defined {
        return Err("the header must be wrapped in one complete include guard".into());
    }

    // Declarations: split at `;` outside braces.
    let toks = tokenize(&code)?;
    let mut decls: Vec<Vec<&str>> = Vec::new();
    let mut cur = Vec::new();
    let mut depth = 0usize;
    for t in &toks {
        match t.as_str() {
            "{" => depth += 1,
            "}" => depth = depth.checked_sub(1).ok_or("unbalanced braces")?,
            ";" if depth == 0 => {
                decls.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(t.as_str());
    }
    if !cur.is_empty() {
        return Err(format!("declaration without `;`: `{}`", cur.join(" ")));
    }

    for d in decls {
        match d.as_slice() {
            ["typedef", "struct", tag, name] if tag == name => {
                header.opaque_types.insert(name.to_string());
            }
            ["typedef", "struct", tag, "{", .., "}", name] if tag == name => {
                header.struct_types.insert(name.to_string());
            }
            ["typedef", ..] => {
                return Err(format!(
                "`{}`: only `typedef struct x x;` and `typedef struct x {{..}} x;` are supported",
                d.join(" ")
            ))
            }
            _ => {
                let (name, proto) = parse_function(&d)?;
                if header.functions.insert(name.clone(), proto).is_some() {
                    return Err(format!("`{name}` is declared twice"));
                }
            }
        }
    }
    Ok(header)
}

fn header() -> Header {
    parse_header(&read(&header_path())).unwrap_or_else(|e| panic!("parsing grim_runtime.h: {e}"))
}

// ---------------------------------------------------------------------------
// The Rust side
// ---------------------------------------------------------------------------

/// One function `src/` exports under its own name.
#[derive(Debug, Clone)]
struct Export {
    /// File it is defined in, relative to the crate.
    file: String,
    /// The Rust signature, for messages.
    signature: String,
    proto: Proto,
}

/// Every `.rs` file under `src/`, as (path relative to the crate, text).
fn runtime_sources() -> Vec<(String, String)> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let entries =
            std::fs::read_dir(dir).unwrap_or_else(|e| panic!("list {}: {e}", dir.display()));
        for entry in entries {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut paths = Vec::new();
    walk(&Path::new(RUNTIME_DIR).join("src"), &mut paths);
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let rel = p
                .strip_prefix(RUNTIME_DIR)
                .unwrap_or(&p)
                .display()
                .to_string();
            (rel, read(&p))
        })
        .collect()
}

/// Whether the attributes export the item under its own name.
fn exported(attrs: &[syn::Attribute]) -> Result<bool, String> {
    let mut yes = false;
    for a in attrs {
        if a.path().is_ident("no_mangle") {
            yes = true;
        } else if a.path().is_ident("export_name") {
            return Err("`export_name` is not supported by this check; use `no_mangle`".into());
        } else if a.path().is_ident("unsafe") {
            // Edition 2024 spells them `#[unsafe(no_mangle)]`.
            if let syn::Meta::List(l) = &a.meta {
                let inner = l.tokens.to_string();
                if inner == "no_mangle" {
                    yes = true;
                } else if inner.starts_with("export_name") {
                    return Err(
                        "`export_name` is not supported by this check; use `no_mangle`".into(),
                    );
                }
            }
        }
    }
    Ok(yes)
}

fn tokens(t: &impl ToTokens) -> String {
    t.to_token_stream().to_string()
}

fn is_extern_c(abi: &Option<syn::Abi>) -> bool {
    abi.as_ref()
        .and_then(|a| a.name.as_ref())
        .is_some_and(|n| n.value() == "C")
}

/// Items of interest in the sources: exported functions and type aliases.
#[derive(Default)]
struct RustItems {
    functions: Vec<(String, syn::ItemFn)>,
    aliases: BTreeMap<String, syn::Type>,
}

fn collect_items(file: &str, items: &[syn::Item], out: &mut RustItems, errors: &mut Vec<String>) {
    for item in items {
        match item {
            syn::Item::Fn(f) => match exported(&f.attrs) {
                Ok(true) => out.functions.push((file.to_string(), f.clone())),
                Ok(false) => {}
                Err(e) => errors.push(format!("{file}: `{}`: {e}", f.sig.ident)),
            },
            syn::Item::Mod(m) => {
                if let Some((_, items)) = &m.content {
                    collect_items(file, items, out, errors);
                }
            }
            syn::Item::Type(t) => {
                let previous = out.aliases.insert(t.ident.to_string(), (*t.ty).clone());
                if previous.is_some() {
                    // Aliases are resolved by name alone, so two with one
                    // name would make the mapping ambiguous.
                    errors.push(format!(
                        "{file}: type alias `{}` defined twice in src/",
                        t.ident
                    ));
                }
            }
            syn::Item::Impl(i) => {
                for ii in &i.items {
                    if let syn::ImplItem::Fn(f) = ii {
                        if exported(&f.attrs).unwrap_or(true) {
                            errors.push(format!(
                                "{file}: method `{}` is exported; this check only covers free functions",
                                f.sig.ident
                            ));
                        }
                    }
                }
            }
            _ => {}
        }
    }
}

/// Follows type aliases (and parentheses) to the type they stand for.
fn resolve<'a>(ty: &'a syn::Type, aliases: &'a BTreeMap<String, syn::Type>) -> &'a syn::Type {
    match ty {
        syn::Type::Paren(p) => resolve(&p.elem, aliases),
        syn::Type::Group(g) => resolve(&g.elem, aliases),
        syn::Type::Path(p) if p.qself.is_none() => {
            // By last segment, so `pool::ParallelBody` resolves too.
            let last = p.path.segments.last().expect("a path has a segment");
            match aliases.get(&last.ident.to_string()) {
                Some(t) if last.arguments.is_none() => resolve(t, aliases),
                _ => ty,
            }
        }
        _ => ty,
    }
}

/// The C spelling of a Rust scalar or `std::ffi` type.
fn c_scalar(name: &str) -> Option<&'static str> {
    Some(match name {
        "i8" => "int8_t",
        "i16" => "int16_t",
        "i32" => "int32_t",
        "i64" => "int64_t",
        "u8" => "uint8_t",
        "u16" => "uint16_t",
        "u32" => "uint32_t",
        "u64" => "uint64_t",
        "usize" => "size_t",
        "isize" => "ptrdiff_t",
        "f32" | "c_float" => "float",
        "f64" | "c_double" => "double",
        "bool" => "bool",
        "c_void" => "void",
        "c_char" => "char",
        "c_schar" => "signed char",
        "c_uchar" => "unsigned char",
        "c_short" => "short",
        "c_ushort" => "unsigned short",
        "c_int" => "int",
        "c_uint" => "unsigned int",
        "c_long" => "long",
        "c_ulong" => "unsigned long",
        "c_longlong" => "long long",
        "c_ulonglong" => "unsigned long long",
        _ => return None,
    })
}

/// The C type of a Rust type, in the header's canonical spelling.
fn c_type(ty: &syn::Type, aliases: &BTreeMap<String, syn::Type>) -> Result<String, String> {
    let unsupported = || {
        Err(format!(
            "type `{}` has no C mapping in this check",
            tokens(ty)
        ))
    };
    match resolve(ty, aliases) {
        syn::Type::Ptr(p) => {
            let pointee = c_type(&p.elem, aliases)?;
            if pointee.contains("(*)") {
                return Err(format!(
                    "`{}`: pointers to function pointers are not supported",
                    tokens(ty)
                ));
            }
            // `*const T` qualifies T: `const T` for a plain T, `T const` for a
            // pointer T (`*const *const f32` -> `const float* const*`).
            let qualified = match (p.const_token.is_some(), pointee.ends_with('*')) {
                (false, _) => pointee,
                (true, false) => format!("const {pointee}"),
                (true, true) => format!("{pointee} const"),
            };
            Ok(format!("{qualified}*"))
        }
        syn::Type::BareFn(f) => {
            if !is_extern_c(&f.abi) {
                return Err(format!(
                    "`{}`: a function pointer crossing to C must be `extern \"C\"`",
                    tokens(ty)
                ));
            }
            if f.variadic.is_some() {
                return unsupported();
            }
            let ret = match &f.output {
                syn::ReturnType::Default => "void".to_string(),
                syn::ReturnType::Type(_, t) => c_type(t, aliases)?,
            };
            let params = f
                .inputs
                .iter()
                .map(|a| c_type(&a.ty, aliases))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(fn_pointer(&ret, &params))
        }
        syn::Type::Path(p) if p.qself.is_none() => {
            let last = p.path.segments.last().expect("a path has a segment");
            let name = last.ident.to_string();
            if name == "Option" {
                // Rust guarantees `Option<fn>` is a nullable function pointer;
                // other `Option`s are not used (and mostly not FFI-safe).
                if let syn::PathArguments::AngleBracketed(a) = &last.arguments {
                    if let [syn::GenericArgument::Type(inner)] =
                        a.args.iter().collect::<Vec<_>>()[..]
                    {
                        if matches!(resolve(inner, aliases), syn::Type::BareFn(_)) {
                            return c_type(inner, aliases);
                        }
                    }
                }
                return unsupported();
            }
            if !last.arguments.is_none() {
                return unsupported();
            }
            if let Some((_, c)) = OPAQUE_TYPES.iter().find(|(r, _)| *r == name) {
                return Ok(c.to_string());
            }
            c_scalar(&name)
                .map(str::to_string)
                .map_or_else(unsupported, Ok)
        }
        syn::Type::Tuple(t) if t.elems.is_empty() => Ok("void".into()),
        _ => unsupported(),
    }
}

/// Maps one exported function's signature to C.
fn export_of(
    file: &str,
    f: &syn::ItemFn,
    aliases: &BTreeMap<String, syn::Type>,
) -> Result<Export, String> {
    let sig = &f.sig;
    let signature = tokens(sig);
    let fail = |msg: String| format!("{file}: `{signature}`: {msg}");
    if !is_extern_c(&sig.abi) {
        return Err(fail("an exported function must be `extern \"C\"`".into()));
    }
    if !matches!(f.vis, syn::Visibility::Public(_)) {
        // `pub` keeps the function reachable from Rust tests and docs like
        // every other export; the symbol is exported either way.
        return Err(fail("exported functions are `pub`".into()));
    }
    if !sig.generics.params.is_empty() || sig.variadic.is_some() {
        return Err(fail("generic or variadic exports are not supported".into()));
    }
    let ret = match &sig.output {
        syn::ReturnType::Default => "void".to_string(),
        syn::ReturnType::Type(_, t) => c_type(t, aliases).map_err(fail)?,
    };
    let mut params = Vec::new();
    for arg in &sig.inputs {
        let syn::FnArg::Typed(pt) = arg else {
            return Err(fail("methods cannot be exported".into()));
        };
        if matches!(resolve(&pt.ty, aliases), syn::Type::BareFn(_)) {
            // C may pass NULL for any function pointer; a non-`Option` fn
            // parameter would make that undefined behaviour in Rust.
            return Err(fail(format!(
                "parameter `{}`: take function pointers as `Option<..>`, C may pass NULL",
                tokens(&pt.pat)
            )));
        }
        params.push(c_type(&pt.ty, aliases).map_err(fail)?);
    }
    Ok(Export {
        file: file.to_string(),
        signature,
        proto: Proto { ret, params },
    })
}

/// Every function the sources export, by symbol name.
fn rust_exports(sources: &[(String, String)]) -> Result<BTreeMap<String, Export>, Vec<String>> {
    let mut items = RustItems::default();
    let mut errors = Vec::new();
    for (file, text) in sources {
        match syn::parse_file(text) {
            Ok(parsed) => collect_items(file, &parsed.items, &mut items, &mut errors),
            Err(e) => errors.push(format!("{file}: does not parse: {e}")),
        }
    }
    let mut exports = BTreeMap::new();
    for (file, f) in &items.functions {
        match export_of(file, f, &items.aliases) {
            Ok(e) => {
                if exports.insert(f.sig.ident.to_string(), e).is_some() {
                    errors.push(format!("`{}` is exported twice", f.sig.ident));
                }
            }
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(exports)
    } else {
        Err(errors)
    }
}

fn exports() -> BTreeMap<String, Export> {
    rust_exports(&runtime_sources())
        .unwrap_or_else(|e| panic!("reading the exports of runtime/src:\n  {}", e.join("\n  ")))
}

// ---------------------------------------------------------------------------
// The checks
// ---------------------------------------------------------------------------

/// Differences between the header and the exports, one message each.
fn compare(header: &Header, exports: &BTreeMap<String, Export>) -> Vec<String> {
    let mut errors = Vec::new();
    for name in MODEL_PROVIDED_FUNCTIONS {
        if !header.functions.contains_key(*name) {
            errors.push(format!(
                "`{name}` is in MODEL_PROVIDED_FUNCTIONS but the header does not declare it: \
                 drop it from the list"
            ));
        }
        if let Some(e) = exports.get(*name) {
            errors.push(format!(
                "{}: `{name}` is provided by each compiled model; the runtime must not export it",
                e.file
            ));
        }
    }
    for (name, e) in exports {
        match header.functions.get(name) {
            None => errors.push(format!(
                "{}: `{name}` is exported but grim_runtime.h does not declare it; declare `{};`",
                e.file,
                e.proto.c_decl(name)
            )),
            Some(h) if *h != e.proto => errors.push(format!(
                "`{name}`: grim_runtime.h declares `{}` but {} exports `{}`, i.e. `{}`",
                h.c_decl(name),
                e.file,
                e.signature,
                e.proto.c_decl(name)
            )),
            Some(_) => {}
        }
    }
    for name in header.functions.keys() {
        if !exports.contains_key(name) && !MODEL_PROVIDED_FUNCTIONS.contains(&name.as_str()) {
            errors.push(format!(
                "grim_runtime.h declares `{name}` but runtime/src does not export it \
                 (if the model or the runner provides it, add it to MODEL_PROVIDED_FUNCTIONS)"
            ));
        }
    }
    for (rust, c) in OPAQUE_TYPES {
        if !header.opaque_types.contains(*c) {
            errors.push(format!(
                "Rust `{rust}` crosses the ABI as the opaque `{c}`, which grim_runtime.h must \
                 declare as `typedef struct {c} {c};`"
            ));
        }
    }
    for t in header.opaque_types.iter().chain(&header.struct_types) {
        let known =
            OPAQUE_TYPES.iter().any(|(_, c)| c == t) || MODEL_PROVIDED_TYPES.contains(&t.as_str());
        if !known {
            errors.push(format!(
                "grim_runtime.h declares type `{t}`, which neither OPAQUE_TYPES nor \
                 MODEL_PROVIDED_TYPES accounts for"
            ));
        }
    }
    errors
}

/// Compiles, with `cc` as C11 and with `c++` as C++11, a file that includes
/// the `grim_runtime.h` of `include_dir` and redeclares each export with
/// its Rust-mapped prototype; any incompatible type is a compile error.
/// Returns the compilers' complaints.
fn cc_check(
    include_dir: &Path,
    exports: &BTreeMap<String, Export>,
    tag: &str,
) -> Result<(), String> {
    let mut c = String::from(
        "/* Generated by runtime/tests/header_matches_abi.rs: every runtime export,\n \
         * redeclared with the C prototype mapped from its Rust signature. */\n\
         #include \"grim_runtime.h\"\n\
         #ifdef __cplusplus\nextern \"C\" {\n#endif\n",
    );
    for (name, e) in exports {
        writeln!(
            c,
            "{}; /* {}: {} */",
            e.proto.c_decl(name),
            e.file,
            e.signature
        )
        .expect("write to String");
    }
    c.push_str("#ifdef __cplusplus\n}\n#endif\n");

    let dir = Path::new(TMP_DIR).join("header-matches-abi").join(tag);
    std::fs::create_dir_all(&dir).expect("create the check directory");
    let file = dir.join("redeclare.c");
    std::fs::write(&file, &c).expect("write the check file");

    let mut complaints = String::new();
    for (compiler, lang) in [
        ("cc", &["-x", "c", "-std=c11"]),
        ("c++", &["-x", "c++", "-std=c++11"]),
    ] {
        let out = Command::new(compiler)
            .args(lang)
            .args([
                "-fsyntax-only",
                "-pedantic-errors",
                "-Wall",
                "-Wextra",
                "-Werror",
                "-I",
            ])
            .arg(include_dir)
            .arg(&file)
            .output()
            .unwrap_or_else(|e| {
                panic!("cannot run `{compiler}` (is a C/C++ compiler on PATH?): {e}")
            });
        if !out.status.success() {
            writeln!(
                complaints,
                "{compiler} rejects {}:\n{}",
                file.display(),
                String::from_utf8_lossy(&out.stderr)
            )
            .expect("write to String");
        }
    }
    if complaints.is_empty() {
        Ok(())
    } else {
        Err(complaints)
    }
}

/// The `&str` constants of a Rust file, by name (nested modules included).
fn str_constants(text: &str) -> BTreeMap<String, String> {
    fn walk(items: &[syn::Item], out: &mut BTreeMap<String, String>) {
        for item in items {
            match item {
                syn::Item::Const(c) => {
                    if let syn::Expr::Lit(syn::ExprLit {
                        lit: syn::Lit::Str(s),
                        ..
                    }) = &*c.expr
                    {
                        out.insert(c.ident.to_string(), s.value());
                    }
                }
                syn::Item::Mod(m) => {
                    if let Some((_, items)) = &m.content {
                        walk(items, out);
                    }
                }
                _ => {}
            }
        }
    }
    let parsed =
        syn::parse_file(text).unwrap_or_else(|e| panic!("dialects/src/abi.rs does not parse: {e}"));
    let mut out = BTreeMap::new();
    walk(&parsed.items, &mut out);
    out
}

#[test]
fn header_declares_exactly_the_rust_exports() {
    let header = header();
    let exports = exports();
    // Guards against a parser that silently finds nothing.
    assert!(
        exports.contains_key("grim_context_create")
            && header.functions.contains_key("grim_context_create"),
        "grim_context_create not found: header {:?}, Rust {:?}",
        header.functions.keys(),
        exports.keys()
    );
    let errors = compare(&header, &exports);
    assert!(
        errors.is_empty(),
        "grim_runtime.h and runtime/src disagree:\n  {}",
        errors.join("\n  ")
    );
}

#[test]
fn c_compilers_accept_the_rust_prototypes_against_the_header() {
    let include = Path::new(RUNTIME_DIR).join("include");
    if let Err(e) = cc_check(&include, &exports(), "as-is") {
        panic!("the Rust signatures do not match grim_runtime.h:\n{e}");
    }
}

#[test]
fn compiler_called_symbols_are_runtime_functions() {
    let abi_rs = Path::new(RUNTIME_DIR).join("../dialects/src/abi.rs");
    let consts = str_constants(&read(&abi_rs));
    let header = header();
    let exports = exports();
    let mut errors = Vec::new();
    for name in COMPILER_CALLS {
        match consts.get(*name) {
            None => errors.push(format!("dialects/src/abi.rs has no `&str` constant `{name}`")),
            Some(sym) if !(header.functions.contains_key(sym) && exports.contains_key(sym)) => errors.push(format!(
                "abi::{name} = {sym:?} is not a function grim_runtime.h declares and runtime/src exports"
            )),
            Some(_) => {}
        }
    }
    // Any other constant that looks like a C symbol of ours must at least be
    // declared by the header (it may be a model-provided one).
    for (name, sym) in &consts {
        if sym.starts_with("grim_") && is_ident(sym) && !header.functions.contains_key(sym) {
            errors.push(format!(
                "abi::{name} = {sym:?} is not declared by grim_runtime.h"
            ));
        }
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}

#[test]
fn version_macro_matches_the_runtime() {
    let header = header();
    let mut macros = header.macros.clone();
    // Every macro must be checked here, or it could drift like a prototype.
    let version = macros
        .remove("GRIM_RUNTIME_VERSION")
        .expect("the header defines GRIM_RUNTIME_VERSION");
    assert!(
        macros.is_empty(),
        "macros without a check against the Rust side: {macros:?}"
    );
    assert_eq!(version, format!("\"{}\"", grim_runtime::RUNTIME_VERSION));
    // SAFETY: the function returns a static NUL-terminated string.
    let c = unsafe { std::ffi::CStr::from_ptr(grim_runtime::grim_runtime_version()) };
    assert_eq!(c.to_str(), Ok(grim_runtime::RUNTIME_VERSION));
}

/// A subtle wrong type, of the kind that slips through review: signedness
/// flipped, or `const` added or removed on a pointee.
fn mutate(ty: &str) -> String {
    if let Some(t) = ty.strip_prefix("const ") {
        t.to_string()
    } else if ty.ends_with('*') {
        format!("const {ty}")
    } else if let Some(t) = ty.strip_prefix("uint") {
        format!("int{t}")
    } else if ty.starts_with("int") && ty.ends_with("_t") {
        format!("u{ty}")
    } else {
        panic!("no mutation for `{ty}`")
    }
}

/// Changes the first parameter type (or the return type if there is none).
fn mutate_proto(p: &Proto) -> Proto {
    let mut p = p.clone();
    match p.params.first_mut() {
        Some(first) => *first = mutate(first),
        None => p.ret = mutate(&p.ret),
    }
    p
}

#[test]
fn a_changed_type_on_either_side_is_caught() {
    let header = header();
    let exports = exports();

    // Rust side: every export gets a wrong type at once; both checks must
    // name every one of them.
    let mut wrong = exports.clone();
    for e in wrong.values_mut() {
        e.proto = mutate_proto(&e.proto);
    }
    let errors = compare(&header, &wrong).join("\n");
    let include = Path::new(RUNTIME_DIR).join("include");
    let cc = cc_check(&include, &wrong, "wrong-rust").expect_err("cc accepted wrong Rust types");
    for name in exports.keys() {
        assert!(
            errors.contains(&format!("`{name}`")),
            "comparison missed {name}:\n{errors}"
        );
        assert!(cc.contains(name.as_str()), "cc missed {name}:\n{cc}");
    }

    // Header side: change one declaration in the header text itself, so
    // the parser is exercised too.
    let text = read(&header_path());
    let (name, proto) = exports
        .iter()
        .find(|(_, e)| !e.proto.params.is_empty())
        .map(|(n, e)| (n, &e.proto))
        .expect("an export with parameters");
    // The declaration, not a comment mentioning the function: it starts a line.
    let decl = format!("{} {name}(", proto.ret);
    let params_start = text
        .match_indices(&decl)
        .map(|(i, _)| i)
        .find(|&i| i == 0 || text.as_bytes()[i - 1] == b'\n')
        .unwrap_or_else(|| panic!("no line starting with `{decl}` in the header"))
        + decl.len();
    let first_type = &proto.params[0];
    assert!(
        text[params_start..].starts_with(first_type.as_str()),
        "`{name}`'s first parameter is not spelled `{first_type}` in the header"
    );
    let edited = format!(
        "{}{}{}",
        &text[..params_start],
        mutate(first_type),
        &text[params_start + first_type.len()..]
    );
    let errors = compare(
        &parse_header(&edited).expect("the edited header parses"),
        &exports,
    );
    // Relative to the unedited header, so that a real mismatch elsewhere
    // is reported by its own test rather than here.
    let baseline = compare(&header, &exports);
    let new: Vec<_> = errors.iter().filter(|e| !baseline.contains(e)).collect();
    assert!(
        new.len() == 1 && new[0].contains(&format!("`{name}`")),
        "expected one new complaint about {name}, got {new:?}"
    );
    let dir = Path::new(TMP_DIR)
        .join("header-matches-abi")
        .join("wrong-header-include");
    std::fs::create_dir_all(&dir).expect("create the include directory");
    std::fs::write(dir.join("grim_runtime.h"), edited).expect("write the edited header");
    let cc = cc_check(&dir, &exports, "wrong-header").expect_err("cc accepted a wrong header");
    assert!(cc.contains(name.as_str()), "cc missed {name}:\n{cc}");
}

#[test]
fn the_header_parser_is_strict() {
    let wrap = |body: &str| format!("#ifndef G\n#define G\n#include <stdint.h>\n{body}\n#endif\n");
    let ok = parse_header(&wrap("void f(int32_t a, void (*cb)(void* p, int64_t n));"))
        .expect("a plain header parses");
    assert_eq!(
        ok.functions["f"].params,
        ["int32_t", "void (*)(void*, int64_t)"]
    );
    for (body, why) in [
        ("void f();", "`()` is not a prototype in C"),
        ("void f(int32_t);", "unnamed parameter"),
        ("void f(int32_t a[4]);", "arrays are not supported"),
        ("int32_t x;", "variables are not supported"),
        ("typedef int32_t t;", "only struct typedefs are supported"),
        ("void f(void); void f(void);", "duplicate declaration"),
        ("#if 1\nvoid f(void);\n#endif", "arbitrary conditionals"),
    ] {
        assert!(
            parse_header(&wrap(body)).is_err(),
            "{why}: `{body}` was accepted"
        );
    }
}
