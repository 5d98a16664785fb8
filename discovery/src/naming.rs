//! ThirdPartyResource naming, as the original had it (see shared/API-NOTES.md):
//! `mysql-db.prsn.io` → group `prsn.io`, kind `MysqlDb`, plural `mysqldbs`.

use heck::ToUpperCamelCase;

/// The names a ThirdPartyResource gives its type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceNames {
    /// API group, e.g. `prsn.io`.
    pub group: String,
    /// Kind, e.g. `MysqlDb`.
    pub kind: String,
    /// Resource (plural) name, e.g. `mysqldbs`.
    pub plural: String,
    /// Singular name, e.g. `mysqldb`.
    pub singular: String,
}

/// Why a ThirdPartyResource name is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Fewer than three dot-separated segments.
    #[error("must have at least three segments (<kind>.<domain>.<tld>), e.g. mysql-db.prsn.io")]
    TooFewSegments,
    /// A segment that is not a DNS label.
    #[error("segment {0:?} must be a DNS label: lower-case letters, digits and '-', starting with a letter or digit and ending with one, at most 63 characters")]
    BadSegment(String),
    /// A kind segment that would give a kind that is not an identifier.
    #[error("the kind segment {0:?} must start with a letter and must not contain \"--\"")]
    BadKindSegment(String),
}

/// True for an RFC 1123 DNS label: lower-case alphanumerics and '-', at most 63.
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// The plural kubectl guesses from a kind.
pub fn plural_of(kind: &str) -> String {
    let lower = kind.to_lowercase();
    if lower.ends_with('s') {
        format!("{lower}es")
    } else if let Some(stem) = lower.strip_suffix('y') {
        format!("{stem}ies")
    } else {
        format!("{lower}s")
    }
}

/// Derives the type names from a ThirdPartyResource's `metadata.name`.
pub fn from_tpr_name(name: &str) -> Result<ResourceNames, NameError> {
    let segments: Vec<&str> = name.split('.').collect();
    if segments.len() < 3 {
        return Err(NameError::TooFewSegments);
    }
    if let Some(bad) = segments.iter().find(|s| !is_dns_label(s)) {
        return Err(NameError::BadSegment(bad.to_string()));
    }
    let kind_segment = segments[0];
    if !kind_segment.starts_with(|c: char| c.is_ascii_lowercase()) || kind_segment.contains("--") {
        return Err(NameError::BadKindSegment(kind_segment.to_string()));
    }
    let kind = kind_segment.to_upper_camel_case();
    Ok(ResourceNames { group: segments[1..].join("."), plural: plural_of(&kind), singular: kind.to_lowercase(), kind })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: &str) -> (String, String, String, String) {
        let r = from_tpr_name(n).unwrap();
        (r.group, r.kind, r.plural, r.singular)
    }

    #[test]
    fn derives_kind_group_plural_like_the_original() {
        let s = |x: &str| x.to_string();
        assert_eq!(names("mysql-db.prsn.io"), (s("prsn.io"), s("MysqlDb"), s("mysqldbs"), s("mysqldb")));
        assert_eq!(names("cron-tab.stable.example.com").1, "CronTab");
        assert_eq!(names("foo.example.com").1, "Foo");
        assert_eq!(names("s3-bucket.aws.example.com").1, "S3Bucket");
        assert_eq!(names("postgres.db.io").2, "postgreses");
        assert_eq!(names("policy.db.io").2, "policies");
    }

    #[test]
    fn refuses_names_the_original_mangled() {
        assert_eq!(from_tpr_name("mysql.io"), Err(NameError::TooFewSegments));
        assert!(matches!(from_tpr_name("3d-model.prsn.io"), Err(NameError::BadKindSegment(_))));
        assert!(matches!(from_tpr_name("my--db.prsn.io"), Err(NameError::BadKindSegment(_))));
        assert!(matches!(from_tpr_name("MySQL.prsn.io"), Err(NameError::BadSegment(_))));
        assert!(matches!(from_tpr_name("db..io"), Err(NameError::BadSegment(_))));
        assert!(matches!(from_tpr_name("db-.prsn.io"), Err(NameError::BadSegment(_))));
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn any_name_is_refused_or_gives_clean_names(name in "\\PC{0,80}") {
                if let Ok(r) = from_tpr_name(&name) {
                    prop_assert!(r.kind.starts_with(|c: char| c.is_ascii_uppercase()), "{:?}", r);
                    prop_assert!(r.kind.chars().all(|c| c.is_ascii_alphanumeric()), "{:?}", r);
                    prop_assert!(r.plural.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()), "{:?}", r);
                    let suffix = format!(".{}", r.group);
                    prop_assert!(name.ends_with(&suffix), "{} {:?}", name, r);
                    prop_assert_eq!(r.singular, r.kind.to_lowercase());
                }
            }

            #[test]
            fn names_of_the_documented_form_are_accepted(
                kind in "[a-z][a-z0-9]{0,8}(-[a-z0-9]{1,6}){0,3}",
                domain in "[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?(\\.[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?){1,3}",
            ) {
                let name = format!("{kind}.{domain}");
                let r = from_tpr_name(&name).unwrap();
                prop_assert_eq!(&r.group, &domain);
                prop_assert_eq!(r.kind.to_lowercase(), kind.replace('-', ""));
                prop_assert_eq!(r.plural, plural_of(&r.kind));
            }
        }
    }
}
