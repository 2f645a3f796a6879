//! Checking the SVG charts Ingot writes (ingot-core's chart module, train's and eval's reports).

/// Tags open and close in a proper nesting (a tiny XML check: text is escaped, so '<' and '>'
/// only delimit tags), every '&' starts an entity, and no non-finite number leaked into the
/// document.
pub fn assert_well_formed_svg(svg: &str) {
    assert!(svg.starts_with("<svg "), "does not start with <svg: {}", &svg[..svg.len().min(40)]);
    assert!(svg.trim_end().ends_with("</svg>"));
    let mut stack: Vec<String> = Vec::new();
    let mut rest = svg;
    while let Some(start) = rest.find('<') {
        let end = rest[start..].find('>').expect("unclosed tag") + start;
        let tag = &rest[start + 1..end];
        if let Some(name) = tag.strip_prefix('/') {
            assert_eq!(stack.pop().as_deref(), Some(name), "mismatched </{name}>");
        } else if !tag.ends_with('/') {
            stack.push(tag.split_whitespace().next().expect("empty tag").to_string());
        }
        rest = &rest[end + 1..];
    }
    assert!(stack.is_empty(), "unclosed: {stack:?}");
    for (i, _) in svg.match_indices('&') {
        let entity = ["&amp;", "&lt;", "&gt;", "&quot;", "&apos;"].iter().any(|e| svg[i..].starts_with(e));
        assert!(entity, "a raw & at {}", &svg[i..svg.len().min(i + 20)]);
    }
    assert!(!svg.contains("NaN") && !svg.contains("inf"), "non-finite coordinates in the SVG");
}
