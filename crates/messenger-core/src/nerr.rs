//! The NET error catalogue: every error number the product prints, with its exact text.
//!
//! Users of `NET SEND` know these messages and search the web for them, so the wording is
//! Windows' own: the NERR texts are quoted from [MS-ERREF] 2.2 (NERR_BASE = 2100), the Win32
//! texts from [MS-ERREF] 2.3. `messenger helpmsg N` prints [`text`]`(N)`.

/// `NERR_Success`: the standard closing line of a NET command that worked.
pub const NERR_SUCCESS: u32 = 0;
/// `ERROR_ACCESS_DENIED`: e.g. deleting another user's alias.
pub const ERROR_ACCESS_DENIED: u32 = 5;
/// `ERROR_INVALID_PARAMETER`: e.g. an empty or over-long name ([MS-MSRP] note <11>).
pub const ERROR_INVALID_PARAMETER: u32 = 87;
/// `ERROR_INVALID_NAME`: a name with characters NetBIOS names may not contain.
pub const ERROR_INVALID_NAME: u32 = 123;
/// `ERROR_NOT_ENOUGH_QUOTA`: a local user sent more messages than the service's rate limit
/// lets through; sending again after a moment works.
pub const ERROR_NOT_ENOUGH_QUOTA: u32 = 1816;
/// `NERR_BufTooSmall`.
pub const NERR_BUF_TOO_SMALL: u32 = 2123;
/// `NERR_NetworkError`.
pub const NERR_NETWORK_ERROR: u32 = 2136;
/// `NERR_InternalError`.
pub const NERR_INTERNAL_ERROR: u32 = 2140;
/// `NERR_NoComputerName`: the computer name is taken on the network; the service cannot start.
pub const NERR_NO_COMPUTER_NAME: u32 = 2270;
/// `NERR_MsgAlreadyStarted`.
pub const NERR_MSG_ALREADY_STARTED: u32 = 2271;
/// `NERR_MsgInitFailed`.
pub const NERR_MSG_INIT_FAILED: u32 = 2272;
/// `NERR_NameNotFound`: the recipient of `NET SEND` could not be found.
pub const NERR_NAME_NOT_FOUND: u32 = 2273;
/// `NERR_AlreadyForwarded`.
pub const NERR_ALREADY_FORWARDED: u32 = 2274;
/// `NERR_AddForwarded`.
pub const NERR_ADD_FORWARDED: u32 = 2275;
/// `NERR_AlreadyExists`: `NET NAME x /ADD` for a name we already hold.
pub const NERR_ALREADY_EXISTS: u32 = 2276;
/// `NERR_TooManyNames`.
pub const NERR_TOO_MANY_NAMES: u32 = 2277;
/// `NERR_DelComputerName`: `NET NAME <computer> /DELETE`.
pub const NERR_DEL_COMPUTER_NAME: u32 = 2278;
/// `NERR_LocalForward`.
pub const NERR_LOCAL_FORWARD: u32 = 2279;
/// `NERR_GrpMsgProcessor`.
pub const NERR_GRP_MSG_PROCESSOR: u32 = 2280;
/// `NERR_PausedRemote`.
pub const NERR_PAUSED_REMOTE: u32 = 2281;
/// `NERR_BadReceive`.
pub const NERR_BAD_RECEIVE: u32 = 2282;
/// `NERR_NameInUse`.
pub const NERR_NAME_IN_USE: u32 = 2283;
/// `NERR_MsgNotStarted`: the daemon is not running.
pub const NERR_MSG_NOT_STARTED: u32 = 2284;
/// `NERR_NotLocalName`: `NET NAME x /DELETE` for a name we do not hold.
pub const NERR_NOT_LOCAL_NAME: u32 = 2285;
/// `NERR_NoForwardName`.
pub const NERR_NO_FORWARD_NAME: u32 = 2286;
/// `NERR_RemoteFull`.
pub const NERR_REMOTE_FULL: u32 = 2287;
/// `NERR_NameNotForwarded`.
pub const NERR_NAME_NOT_FORWARDED: u32 = 2288;
/// `NERR_TruncatedBroadcast`.
pub const NERR_TRUNCATED_BROADCAST: u32 = 2289;
/// `NERR_DuplicateName`: the name is registered by another host.
pub const NERR_DUPLICATE_NAME: u32 = 2297;
/// `NERR_DeleteLater`.
pub const NERR_DELETE_LATER: u32 = 2298;
/// `NERR_IncompleteDel`.
pub const NERR_INCOMPLETE_DEL: u32 = 2299;

/// One entry of the catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetError {
    /// The number users type after `NET HELPMSG`.
    pub code: u32,
    /// The symbolic name from the Windows headers, for logs and documentation.
    pub symbol: &'static str,
    /// The text, exactly as Windows prints it.
    pub text: &'static str,
}

const fn e(code: u32, symbol: &'static str, text: &'static str) -> NetError {
    NetError { code, symbol, text }
}

/// Every error the product prints, sorted by code.
pub const CATALOGUE: &[NetError] = &[
    e(NERR_SUCCESS, "NERR_Success", "The command completed successfully."),
    e(ERROR_ACCESS_DENIED, "ERROR_ACCESS_DENIED", "Access is denied."),
    e(ERROR_INVALID_PARAMETER, "ERROR_INVALID_PARAMETER", "The parameter is incorrect."),
    e(
        ERROR_INVALID_NAME,
        "ERROR_INVALID_NAME",
        "The filename, directory name, or volume label syntax is incorrect.",
    ),
    e(
        ERROR_NOT_ENOUGH_QUOTA,
        "ERROR_NOT_ENOUGH_QUOTA",
        "Not enough quota is available to process this command.",
    ),
    e(NERR_BUF_TOO_SMALL, "NERR_BufTooSmall", "The API return buffer is too small."),
    e(NERR_NETWORK_ERROR, "NERR_NetworkError", "A general network error occurred."),
    e(NERR_INTERNAL_ERROR, "NERR_InternalError", "An internal error occurred."),
    e(
        NERR_NO_COMPUTER_NAME,
        "NERR_NoComputerName",
        "The computer name could not be added as a message alias. The name might already exist on the network.",
    ),
    e(NERR_MSG_ALREADY_STARTED, "NERR_MsgAlreadyStarted", "The Messenger service is already started."),
    e(NERR_MSG_INIT_FAILED, "NERR_MsgInitFailed", "The Messenger service failed to start."),
    e(NERR_NAME_NOT_FOUND, "NERR_NameNotFound", "The message alias could not be found on the network."),
    e(NERR_ALREADY_FORWARDED, "NERR_AlreadyForwarded", "This message alias has already been forwarded."),
    e(NERR_ADD_FORWARDED, "NERR_AddForwarded", "This message alias has been added but is still forwarded."),
    e(NERR_ALREADY_EXISTS, "NERR_AlreadyExists", "This message alias already exists locally."),
    e(
        NERR_TOO_MANY_NAMES,
        "NERR_TooManyNames",
        "The maximum number of added message aliases has been exceeded.",
    ),
    e(NERR_DEL_COMPUTER_NAME, "NERR_DelComputerName", "The computer name could not be deleted."),
    e(
        NERR_LOCAL_FORWARD,
        "NERR_LocalForward",
        "Messages cannot be forwarded back to the same workstation.",
    ),
    e(NERR_GRP_MSG_PROCESSOR, "NERR_GrpMsgProcessor", "An error occurred in the domain message processor."),
    e(
        NERR_PAUSED_REMOTE,
        "NERR_PausedRemote",
        "The message was sent, but the recipient has paused the Messenger service.",
    ),
    e(NERR_BAD_RECEIVE, "NERR_BadReceive", "The message was sent but not received."),
    e(NERR_NAME_IN_USE, "NERR_NameInUse", "The message alias is currently in use. Try again later."),
    e(NERR_MSG_NOT_STARTED, "NERR_MsgNotStarted", "The Messenger service has not been started."),
    e(NERR_NOT_LOCAL_NAME, "NERR_NotLocalName", "The name is not on the local computer."),
    e(
        NERR_NO_FORWARD_NAME,
        "NERR_NoForwardName",
        "The forwarded message alias could not be found on the network.",
    ),
    e(NERR_REMOTE_FULL, "NERR_RemoteFull", "The message alias table on the remote station is full."),
    e(
        NERR_NAME_NOT_FORWARDED,
        "NERR_NameNotForwarded",
        "Messages for this alias are not currently being forwarded.",
    ),
    e(NERR_TRUNCATED_BROADCAST, "NERR_TruncatedBroadcast", "The broadcast message was truncated."),
    e(NERR_DUPLICATE_NAME, "NERR_DuplicateName", "A duplicate message alias exists on the network."),
    e(NERR_DELETE_LATER, "NERR_DeleteLater", "This message alias will be deleted later."),
    e(
        NERR_INCOMPLETE_DEL,
        "NERR_IncompleteDel",
        "The message alias was not successfully deleted from all networks.",
    ),
];

/// The catalogue entry for `code`.
pub fn lookup(code: u32) -> Option<&'static NetError> {
    CATALOGUE
        .binary_search_by_key(&code, |entry| entry.code)
        .ok()
        .map(|i| &CATALOGUE[i])
}

/// The text Windows prints for `code`, if the product knows it.
pub fn text(code: u32) -> Option<&'static str> {
    lookup(code).map(|entry| entry.text)
}

/// The symbolic name (`NERR_NameNotFound`) of `code`.
pub fn symbol(code: u32) -> Option<&'static str> {
    lookup(code).map(|entry| entry.symbol)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_is_sorted_and_unique() {
        assert!(CATALOGUE.windows(2).all(|w| w[0].code < w[1].code));
    }

    #[test]
    fn known_texts() {
        assert_eq!(
            text(2273),
            Some("The message alias could not be found on the network.")
        );
        assert_eq!(
            text(2284),
            Some("The Messenger service has not been started.")
        );
        assert_eq!(text(0), Some("The command completed successfully."));
        assert_eq!(text(5), Some("Access is denied."));
        assert_eq!(text(87), Some("The parameter is incorrect."));
        assert_eq!(
            text(123),
            Some("The filename, directory name, or volume label syntax is incorrect.")
        );
        assert_eq!(
            text(2297),
            Some("A duplicate message alias exists on the network.")
        );
        assert_eq!(symbol(2276), Some("NERR_AlreadyExists"));
        assert_eq!(text(2290), None);
        assert_eq!(text(9999), None);
    }

    #[test]
    fn every_messenger_code_of_the_reference_is_present() {
        for code in (2270..=2289).chain(2297..=2299).chain([2123, 2136, 2140]) {
            assert!(text(code).is_some(), "{code} missing");
        }
    }

    #[test]
    fn texts_are_sentences() {
        for entry in CATALOGUE {
            assert!(entry.text.ends_with('.'), "{}", entry.code);
            assert!(!entry.text.contains("  "), "{}", entry.code);
        }
    }
}
