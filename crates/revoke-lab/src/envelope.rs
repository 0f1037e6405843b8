//! SOAP envelopes in and out of a lab server: parsing what clients send
//! (namespace-aware, tolerant of element order and of extra elements, as
//! WinRM is) and writing what Windows answers.

use std::time::Duration;

use roxmltree::{Document, Node};

use revoke_winrm::soap::{
    ACTION_FAULT, ANONYMOUS, NS_ADDRESSING, NS_SHELL, NS_SOAP, NS_WSMAN, NS_WSMAN_FAULT,
};

/// WS-Addressing's own fault action (used for ActionNotSupported).
pub const ACTION_ADDRESSING_FAULT: &str = "http://schemas.xmlsoap.org/ws/2004/08/addressing/fault";

/// The parts of a request the shell resource acts on.
#[derive(Debug, Clone, PartialEq)]
pub struct WsmanRequest {
    pub action: String,
    pub message_id: Option<String>,
    pub to: Option<String>,
    pub resource_uri: Option<String>,
    pub shell_id: Option<String>,
    pub operation_timeout: Option<Duration>,
    /// `w:MaxEnvelopeSize`: the largest answer the client takes, in bytes.
    pub max_envelope_size: Option<usize>,
    pub body: Body,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    /// `rsp:Shell` (Create).
    Shell,
    /// `rsp:CommandLine`.
    CommandLine {
        command: String,
        arguments: Vec<String>,
    },
    /// `rsp:Receive/rsp:DesiredStream`.
    Receive { command_id: Option<String> },
    /// `rsp:Signal`.
    Signal {
        command_id: Option<String>,
        code: String,
    },
    /// Anything else, including an empty body (Delete).
    Other,
}

/// A request that is not well-formed SOAP or lacks its addressing headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed(pub String);

fn is(node: &Node, ns: &str, local: &str) -> bool {
    node.is_element() && node.tag_name().name() == local && node.tag_name().namespace() == Some(ns)
}

fn child<'a, 'i>(node: Node<'a, 'i>, ns: &str, local: &str) -> Option<Node<'a, 'i>> {
    node.children().find(|c| is(c, ns, local))
}

fn text(node: Node) -> String {
    node.text().unwrap_or("").trim().to_string()
}

pub fn parse_request(xml: &[u8]) -> Result<WsmanRequest, Malformed> {
    let xml = std::str::from_utf8(xml).map_err(|_| Malformed("body is not UTF-8".into()))?;
    let doc = Document::parse(xml).map_err(|e| Malformed(format!("XML: {e}")))?;
    let env = doc.root_element();
    if !is(&env, NS_SOAP, "Envelope") {
        return Err(Malformed("root element is not a SOAP 1.2 Envelope".into()));
    }
    let header = child(env, NS_SOAP, "Header").ok_or_else(|| Malformed("no SOAP Header".into()))?;
    let action = child(header, NS_ADDRESSING, "Action")
        .map(text)
        .filter(|a| !a.is_empty())
        .ok_or_else(|| Malformed("no wsa:Action header".into()))?;
    let message_id = child(header, NS_ADDRESSING, "MessageID").map(text);
    let to = child(header, NS_ADDRESSING, "To").map(text);
    let resource_uri = child(header, NS_WSMAN, "ResourceURI").map(text);
    let shell_id = child(header, NS_WSMAN, "SelectorSet").and_then(|set| {
        set.children()
            .filter(|c| is(c, NS_WSMAN, "Selector"))
            .find(|c| c.attribute("Name") == Some("ShellId"))
            .map(text)
    });
    let operation_timeout =
        child(header, NS_WSMAN, "OperationTimeout").and_then(|n| parse_duration(&text(n)));
    let max_envelope_size =
        child(header, NS_WSMAN, "MaxEnvelopeSize").and_then(|n| text(n).parse().ok());

    let body_node = child(env, NS_SOAP, "Body");
    let first = body_node.and_then(|b| b.children().find(|c| c.is_element()));
    let body = match first {
        Some(n) if is(&n, NS_SHELL, "Shell") => Body::Shell,
        Some(n) if is(&n, NS_SHELL, "CommandLine") => Body::CommandLine {
            command: child(n, NS_SHELL, "Command").map(text).unwrap_or_default(),
            arguments: n
                .children()
                .filter(|c| is(c, NS_SHELL, "Arguments"))
                .map(|c| c.text().unwrap_or("").to_string())
                .collect(),
        },
        Some(n) if is(&n, NS_SHELL, "Receive") => Body::Receive {
            command_id: child(n, NS_SHELL, "DesiredStream")
                .and_then(|d| d.attribute("CommandId"))
                .map(str::to_string),
        },
        Some(n) if is(&n, NS_SHELL, "Signal") => Body::Signal {
            command_id: n.attribute("CommandId").map(str::to_string),
            code: child(n, NS_SHELL, "Code").map(text).unwrap_or_default(),
        },
        _ => Body::Other,
    };
    Ok(WsmanRequest {
        action,
        message_id,
        to,
        resource_uri,
        shell_id,
        operation_timeout,
        max_envelope_size,
        body,
    })
}

/// xs:duration as WS-Management uses it: `PT60.000S`, `PT20S`, `P0DT0H1M0S`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let rest = s.strip_prefix('P')?;
    let (date, time) = match rest.split_once('T') {
        Some((d, t)) => (d, t),
        None => (rest, ""),
    };
    let mut secs = 0f64;
    let mut any = false;
    let mut take = |part: &str, units: &[(char, f64)]| -> Option<()> {
        let mut num = String::new();
        for c in part.chars() {
            if c.is_ascii_digit() || c == '.' {
                num.push(c);
            } else {
                let mult = units.iter().find(|(u, _)| *u == c)?.1;
                secs += num.parse::<f64>().ok()? * mult;
                num.clear();
                any = true;
            }
        }
        num.is_empty().then_some(())
    };
    take(
        date,
        &[
            ('Y', 365.0 * 86400.0),
            ('M', 30.0 * 86400.0),
            ('D', 86400.0),
        ],
    )?;
    take(time, &[('H', 3600.0), ('M', 60.0), ('S', 1.0)])?;
    (any && secs.is_finite()).then(|| Duration::from_secs_f64(secs))
}

/// Escapes text and attribute values (the client's escaping, shared).
pub use revoke_winrm::soap::xml_escape as esc;

fn new_message_id() -> String {
    format!("uuid:{}", uuid::Uuid::new_v4().to_string().to_uppercase())
}

/// A response envelope: the namespaces Windows declares, then the
/// addressing headers (Action, MessageID, To, RelatesTo) and `body`.
pub fn envelope(action: &str, relates_to: Option<&str>, body: &str) -> String {
    let relates = relates_to
        .map(|r| format!("<a:RelatesTo>{}</a:RelatesTo>", esc(r)))
        .unwrap_or_default();
    format!(
        concat!(
            r#"<s:Envelope xml:lang="en-US" xmlns:s="{s}" xmlns:a="{a}" "#,
            r#"xmlns:x="http://schemas.xmlsoap.org/ws/2004/09/transfer" "#,
            r#"xmlns:w="{w}" xmlns:rsp="{rsp}" "#,
            r#"xmlns:p="http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd">"#,
            "<s:Header><a:Action>{action}</a:Action><a:MessageID>{mid}</a:MessageID>",
            "<a:To>{to}</a:To>{relates}</s:Header><s:Body>{body}</s:Body></s:Envelope>"
        ),
        s = NS_SOAP,
        a = NS_ADDRESSING,
        w = NS_WSMAN,
        rsp = NS_SHELL,
        action = esc(action),
        mid = new_message_id(),
        to = ANONYMOUS,
        relates = relates,
        body = body,
    )
}

/// SOAP 1.2 fault code: who is to blame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultCode {
    Sender,
    Receiver,
}

/// A WS-Management fault as Windows words it: SOAP Code/Subcode/Reason and
/// a `f:WSManFault` detail with the Win32/WinRM error code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsmanFault {
    pub code: FaultCode,
    /// Qualified name, prefix `w:` (WS-Management) or `a:` (WS-Addressing).
    pub subcode: &'static str,
    pub reason: String,
    pub wsman_code: u32,
    pub message: String,
}

impl WsmanFault {
    /// A Receive whose command has not finished within OperationTimeout;
    /// clients repeat the Receive. Wording as Windows prints it.
    pub fn operation_timeout() -> Self {
        let text = "The WS-Management service cannot complete the operation within the time specified in OperationTimeout.  ";
        WsmanFault {
            code: FaultCode::Receiver,
            subcode: "w:TimedOut",
            reason: text.into(),
            wsman_code: revoke_winrm::soap::FAULT_CODE_OPERATION_TIMEOUT,
            message: text.into(),
        }
    }

    /// An unknown or missing ShellId (ERROR_WSMAN_INVALID_SELECTORS, 0x8033805B).
    pub fn shell_not_found(shell_id: &str) -> Self {
        WsmanFault {
            code: FaultCode::Sender,
            subcode: "w:InvalidSelectors",
            reason: "The WS-Management service cannot process the request because the request contained invalid selectors for the resource. ".into(),
            wsman_code: 2150858843,
            message: format!(
                "The request for the Windows Remote Shell with ShellId {shell_id} failed because the shell was not found on the server. Possible causes are: the specified ShellId is incorrect or the shell no longer exists on the server. Provide the correct ShellId or create a new shell and retry the operation. "
            ),
        }
    }

    /// A CommandId the shell does not know. Wording modelled on the
    /// ShellId one; not checked against a Windows host.
    pub fn command_not_found(command_id: &str) -> Self {
        WsmanFault {
            code: FaultCode::Sender,
            subcode: "w:InvalidParameter",
            reason: "The parameter is incorrect. ".into(),
            wsman_code: 87,
            message: format!(
                "The request for the Windows Remote Shell with CommandId {command_id} failed because the command was not found in the shell. "
            ),
        }
    }

    /// WS-Addressing ActionNotSupported. The WSManFault code
    /// (ERROR_WSMAN_ACTION_NOT_SUPPORTED, 0x80338005 as we understand it)
    /// has not been checked against a Windows host.
    pub fn action_not_supported(action: &str) -> Self {
        WsmanFault {
            code: FaultCode::Sender,
            subcode: "a:ActionNotSupported",
            reason: "The action is not supported by the service. ".into(),
            wsman_code: 2150858757,
            message: format!(
                "The WS-Management service cannot process the request because the action {action} is not supported for the resource. "
            ),
        }
    }

    /// A resource URI other than the cmd shell (ERROR_WSMAN_RESOURCE_NOT_FOUND).
    pub fn resource_not_found(uri: &str) -> Self {
        WsmanFault {
            code: FaultCode::Sender,
            subcode: "w:DestinationUnreachable",
            reason: "The WS-Management service cannot process the request. The resource URI is not valid or is not supported. ".into(),
            wsman_code: 2150858770,
            message: format!(
                "The WS-Management service cannot process the request. The resource URI ({uri}) was not found in the WS-Management catalog. "
            ),
        }
    }

    /// The SoapFault lab fault: the per-user shell quota (MS-WSMV 3.1.4.5.2.1, wsman:QuotaLimit).
    pub fn shell_quota_exceeded() -> Self {
        WsmanFault {
            code: FaultCode::Receiver,
            subcode: "w:QuotaLimit",
            reason: "The WS-Management service cannot process the request. This user is allowed a maximum number of 5 concurrent shells, which has been exceeded. Close existing shells or raise the quota for this user. ".into(),
            wsman_code: 2150859174,
            message: "The WS-Management service cannot process the request. This user is allowed a maximum number of 5 concurrent shells, which has been exceeded. Close existing shells or raise the quota for this user. ".into(),
        }
    }

    /// A plaintext body on HTTP while AllowUnencrypted=false (the Windows
    /// default). No Windows host was at hand to copy the exact words from:
    /// this is worded like WinRM's own messages and uses ERROR_ACCESS_DENIED.
    pub fn unencrypted_refused() -> Self {
        let text = "The WS-Management service cannot process the request because the request was sent unencrypted. Unencrypted traffic is disabled in the service configuration (AllowUnencrypted = false). Send the request over HTTPS or seal the message with the Negotiate or Kerberos session. ";
        WsmanFault {
            code: FaultCode::Sender,
            subcode: "w:AccessDenied",
            reason: text.into(),
            wsman_code: 5,
            message: text.into(),
        }
    }

    /// Not SOAP, or no addressing headers.
    pub fn malformed(detail: &str) -> Self {
        WsmanFault {
            code: FaultCode::Sender,
            subcode: "w:InvalidMessageInformationHeader",
            reason:
                "The WS-Management service cannot process the request because the XML is invalid. "
                    .into(),
            wsman_code: 2150858817,
            message: format!(
                "The WS-Management service cannot process the request because the XML is invalid. {detail} "
            ),
        }
    }

    fn action(&self) -> &'static str {
        if self.subcode.starts_with("a:") {
            ACTION_ADDRESSING_FAULT
        } else {
            ACTION_FAULT
        }
    }

    /// The fault envelope (sent with HTTP 500).
    pub fn to_envelope(&self, relates_to: Option<&str>, machine: &str) -> String {
        let code = match self.code {
            FaultCode::Sender => "s:Sender",
            FaultCode::Receiver => "s:Receiver",
        };
        let body = format!(
            concat!(
                "<s:Fault><s:Code><s:Value>{code}</s:Value><s:Subcode><s:Value>{sub}</s:Value>",
                "</s:Subcode></s:Code><s:Reason><s:Text xml:lang=\"en-US\">{reason}</s:Text>",
                "</s:Reason><s:Detail><f:WSManFault xmlns:f=\"{f}\" Code=\"{wcode}\" ",
                "Machine=\"{machine}\"><f:Message>{message}</f:Message></f:WSManFault>",
                "</s:Detail></s:Fault>"
            ),
            code = code,
            sub = self.subcode,
            reason = esc(&self.reason),
            f = NS_WSMAN_FAULT,
            wcode = self.wsman_code,
            machine = esc(machine),
            message = esc(&self.message),
        );
        envelope(self.action(), relates_to, &body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("PT60.000S"), Some(Duration::from_secs(60)));
        assert_eq!(parse_duration("PT20S"), Some(Duration::from_secs(20)));
        assert_eq!(parse_duration("PT0.5S"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("P0DT0H1M30S"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("PT"), None);
        assert_eq!(parse_duration("60"), None);
        assert_eq!(parse_duration("PT5X"), None);
    }

    #[test]
    fn parses_a_command_with_arguments() {
        let xml = format!(
            r#"<s:Envelope xmlns:s="{NS_SOAP}" xmlns:a="{NS_ADDRESSING}" xmlns:w="{NS_WSMAN}" xmlns:rsp="{NS_SHELL}">
<s:Header><a:Action>{}</a:Action><a:MessageID>uuid:1</a:MessageID>
<w:SelectorSet><w:Selector Name="ShellId">S1</w:Selector></w:SelectorSet>
<w:OperationTimeout>PT5S</w:OperationTimeout><w:MaxEnvelopeSize>153600</w:MaxEnvelopeSize></s:Header>
<w:OptionSet/>
<s:Body><rsp:CommandLine><rsp:Command>prog</rsp:Command><rsp:Arguments>a b</rsp:Arguments><rsp:Arguments>c</rsp:Arguments></rsp:CommandLine></s:Body></s:Envelope>"#,
            revoke_winrm::soap::ACTION_COMMAND
        );
        let r = parse_request(xml.as_bytes()).unwrap();
        assert_eq!(r.shell_id.as_deref(), Some("S1"));
        assert_eq!(r.message_id.as_deref(), Some("uuid:1"));
        assert_eq!(r.operation_timeout, Some(Duration::from_secs(5)));
        assert_eq!(r.max_envelope_size, Some(153_600));
        assert_eq!(
            r.body,
            Body::CommandLine {
                command: "prog".into(),
                arguments: vec!["a b".into(), "c".into()]
            }
        );
    }

    #[test]
    fn fault_envelope_is_well_formed() {
        let xml = WsmanFault::operation_timeout().to_envelope(Some("uuid:X"), "ex01");
        let doc = Document::parse(&xml).unwrap();
        let f = doc
            .descendants()
            .find(|n| is(n, NS_WSMAN_FAULT, "WSManFault"))
            .unwrap();
        assert_eq!(f.attribute("Code"), Some("2150858793"));
        assert!(xml.contains("<a:RelatesTo>uuid:X</a:RelatesTo>"));
        assert!(xml.contains("<s:Value>w:TimedOut</s:Value>"));
    }

    #[test]
    fn rejects_non_soap() {
        assert!(parse_request(b"<x/>").is_err());
        assert!(parse_request(b"not xml").is_err());
    }
}
