use super::*;

#[test]
fn placeholder() {
    assert_eq!(go_quote("a\"b"), "\"a\\\"b\"");
}
