//! WS-Management (MS-WSMV) vocabulary shared by the client and the lab's server:
//! namespaces, actions and resource URIs of the Windows Remote Shell.

pub const NS_SOAP: &str = "http://www.w3.org/2003/05/soap-envelope";
pub const NS_ADDRESSING: &str = "http://schemas.xmlsoap.org/ws/2004/08/addressing";
pub const NS_WSMAN: &str = "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd";
pub const NS_WSMAN_MS: &str = "http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd";
pub const NS_SHELL: &str = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell";
pub const NS_TRANSFER: &str = "http://schemas.xmlsoap.org/ws/2004/09/transfer";
pub const NS_WSMAN_FAULT: &str = "http://schemas.microsoft.com/wbem/wsman/1/wsmanfault";

pub const RESOURCE_CMD: &str = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/cmd";
pub const ANONYMOUS: &str = "http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous";

pub const ACTION_CREATE: &str = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Create";
pub const ACTION_DELETE: &str = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Delete";
pub const ACTION_COMMAND: &str = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Command";
pub const ACTION_RECEIVE: &str = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Receive";
pub const ACTION_SIGNAL: &str = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Signal";
pub const ACTION_FAULT: &str = "http://schemas.dmtf.org/wbem/wsman/1/wsman/fault";

pub const COMMAND_STATE_DONE: &str =
    "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/CommandState/Done";
pub const COMMAND_STATE_RUNNING: &str =
    "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/CommandState/Running";
pub const SIGNAL_TERMINATE: &str =
    "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/signal/terminate";

/// The largest response envelope the client accepts, in bytes: sent as
/// `w:MaxEnvelopeSize` in every request (what pywinrm asks for too).
pub const MAX_ENVELOPE_SIZE: usize = 153_600;

/// WSManFault code of `w:TimeoutFault`: a Receive whose command is still running.
pub const FAULT_CODE_OPERATION_TIMEOUT: u32 = 2150858793;

use super::WinrmError;

/// Escape text for an XML element or attribute value.
pub fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// One request envelope of the Windows Remote Shell.
pub struct Request<'a> {
    pub to: &'a str,
    pub action: &'a str,
    pub message_id: &'a str,
    pub shell_id: Option<&'a str>,
    pub operation_timeout_secs: u64,
    /// `(name, value)` pairs of `w:OptionSet`.
    pub options: &'a [(&'a str, &'a str)],
    pub body: &'a str,
}

impl Request<'_> {
    pub fn to_xml(&self) -> String {
        let selector = self
            .shell_id
            .map(|id| {
                format!(
                    "<w:SelectorSet><w:Selector Name=\"ShellId\">{}</w:Selector></w:SelectorSet>",
                    xml_escape(id)
                )
            })
            .unwrap_or_default();
        let options = if self.options.is_empty() {
            String::new()
        } else {
            let inner: String = self
                .options
                .iter()
                .map(|(name, value)| {
                    format!(
                        "<w:Option Name=\"{}\">{}</w:Option>",
                        xml_escape(name),
                        xml_escape(value)
                    )
                })
                .collect();
            format!("<w:OptionSet>{inner}</w:OptionSet>")
        };
        format!(
            "<s:Envelope xmlns:s=\"{NS_SOAP}\" xmlns:a=\"{NS_ADDRESSING}\" xmlns:w=\"{NS_WSMAN}\" \
             xmlns:p=\"{NS_WSMAN_MS}\" xmlns:rsp=\"{NS_SHELL}\">\
             <s:Header>\
             <a:To>{to}</a:To>\
             <a:ReplyTo><a:Address s:mustUnderstand=\"true\">{ANONYMOUS}</a:Address></a:ReplyTo>\
             <w:MaxEnvelopeSize s:mustUnderstand=\"true\">{MAX_ENVELOPE_SIZE}</w:MaxEnvelopeSize>\
             <a:MessageID>{id}</a:MessageID>\
             <w:Locale xml:lang=\"en-US\" s:mustUnderstand=\"false\"/>\
             <p:DataLocale xml:lang=\"en-US\" s:mustUnderstand=\"false\"/>\
             <w:OperationTimeout>PT{timeout}.000S</w:OperationTimeout>\
             <w:ResourceURI s:mustUnderstand=\"true\">{RESOURCE_CMD}</w:ResourceURI>\
             <a:Action s:mustUnderstand=\"true\">{action}</a:Action>\
             {selector}{options}\
             </s:Header><s:Body>{body}</s:Body></s:Envelope>",
            to = xml_escape(self.to),
            id = xml_escape(self.message_id),
            timeout = self.operation_timeout_secs,
            action = self.action,
            body = self.body,
        )
    }
}

pub const CREATE_SHELL_BODY: &str = "<rsp:Shell><rsp:InputStreams>stdin</rsp:InputStreams>\
     <rsp:OutputStreams>stdout stderr</rsp:OutputStreams></rsp:Shell>";

pub fn command_body(program: &str, args: &[String]) -> String {
    let args: String = args
        .iter()
        .map(|a| format!("<rsp:Arguments>{}</rsp:Arguments>", xml_escape(a)))
        .collect();
    format!(
        "<rsp:CommandLine><rsp:Command>{}</rsp:Command>{args}</rsp:CommandLine>",
        xml_escape(program)
    )
}

pub fn receive_body(command_id: &str) -> String {
    format!(
        "<rsp:Receive><rsp:DesiredStream CommandId=\"{}\">stdout stderr</rsp:DesiredStream></rsp:Receive>",
        xml_escape(command_id)
    )
}

pub fn signal_body(command_id: &str) -> String {
    format!(
        "<rsp:Signal CommandId=\"{}\"><rsp:Code>{SIGNAL_TERMINATE}</rsp:Code></rsp:Signal>",
        xml_escape(command_id)
    )
}

fn parse(xml: &str) -> Result<roxmltree::Document<'_>, WinrmError> {
    roxmltree::Document::parse(xml)
        .map_err(|e| WinrmError::Protocol(format!("response is not XML ({e})")))
}

fn find<'a, 'i>(
    doc: &'a roxmltree::Document<'i>,
    ns: &str,
    local: &str,
) -> Option<roxmltree::Node<'a, 'i>> {
    doc.descendants()
        .find(|n| n.tag_name().name() == local && n.tag_name().namespace() == Some(ns))
}

/// A SOAP fault in a response, if there is one.
pub fn parse_fault(xml: &str) -> Option<WinrmError> {
    let doc = roxmltree::Document::parse(xml).ok()?;
    let fault = find(&doc, NS_SOAP, "Fault")?;
    let value_of = |parent: roxmltree::Node| {
        parent
            .children()
            .find(|n| n.tag_name().name() == "Value")
            .and_then(|n| n.text())
            .map(str::trim)
            .map(String::from)
    };
    let code = fault.descendants().find(|n| n.tag_name().name() == "Code");
    let subcode = code
        .and_then(|c| c.descendants().find(|n| n.tag_name().name() == "Subcode"))
        .and_then(value_of)
        .or_else(|| code.and_then(value_of))
        .unwrap_or_else(|| "unknown".into());
    let wsman = fault
        .descendants()
        .find(|n| n.tag_name().name() == "WSManFault");
    let message = wsman
        .and_then(|w| w.descendants().find(|n| n.tag_name().name() == "Message"))
        .map(|m| {
            m.descendants()
                .filter(|n| n.is_text())
                .filter_map(|n| n.text())
                .collect::<String>()
        });
    let reason = message
        .filter(|m| !m.trim().is_empty())
        .or_else(|| {
            fault
                .descendants()
                .find(|n| n.tag_name().name() == "Text")
                .and_then(|n| n.text())
                .map(String::from)
        })
        .unwrap_or_default();
    // The server's words end up on a terminal.
    Some(WinrmError::Fault {
        subcode: crate::sanitize(&subcode),
        reason: crate::sanitize(&reason),
        wsman_code: wsman
            .and_then(|w| w.attribute("Code"))
            .and_then(|c| c.parse().ok()),
    })
}

/// The ShellId of a Create response.
pub fn parse_shell_id(xml: &str) -> Result<String, WinrmError> {
    let doc = parse(xml)?;
    find(&doc, NS_SHELL, "ShellId")
        .and_then(|n| n.text())
        .or_else(|| {
            doc.descendants()
                .find(|n| {
                    n.tag_name().name() == "Selector" && n.attribute("Name") == Some("ShellId")
                })
                .and_then(|n| n.text())
        })
        .map(|s| s.trim().to_string())
        .ok_or_else(|| WinrmError::Protocol("no ShellId in the Create response".into()))
}

/// The CommandId of a Command response.
pub fn parse_command_id(xml: &str) -> Result<String, WinrmError> {
    let doc = parse(xml)?;
    find(&doc, NS_SHELL, "CommandId")
        .and_then(|n| n.text())
        .map(|s| s.trim().to_string())
        .ok_or_else(|| WinrmError::Protocol("no CommandId in the Command response".into()))
}

/// One Receive response: stream chunks and, when the command ended, its exit code.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Received {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub exit_code: Option<i32>,
}

pub fn parse_receive(xml: &str) -> Result<Received, WinrmError> {
    use base64::Engine;
    let doc = parse(xml)?;
    let mut out = Received::default();
    for stream in doc
        .descendants()
        .filter(|n| n.tag_name().name() == "Stream" && n.tag_name().namespace() == Some(NS_SHELL))
    {
        let Some(text) = stream.text() else { continue };
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|e| WinrmError::Protocol(format!("stream is not base64 ({e})")))?;
        match stream.attribute("Name") {
            Some("stdout") => out.stdout.extend(bytes),
            Some("stderr") => out.stderr.extend(bytes),
            _ => {}
        }
    }
    if let Some(state) = find(&doc, NS_SHELL, "CommandState")
        && state.attribute("State") == Some(COMMAND_STATE_DONE)
    {
        let code = state
            .descendants()
            .find(|n| n.tag_name().name() == "ExitCode")
            .and_then(|n| n.text())
            .and_then(|t| t.trim().parse::<i64>().ok())
            .ok_or_else(|| WinrmError::Protocol("command done without an ExitCode".into()))?;
        // Windows reports exit codes as unsigned 32-bit values.
        out.exit_code = Some(code as i32);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_escapes_arguments_and_carries_selector() {
        let body = command_body("cmd", &["a&b".into(), "<x>".into()]);
        let xml = Request {
            to: "http://h:5985/wsman",
            action: ACTION_COMMAND,
            message_id: "uuid:1",
            shell_id: Some("S-1"),
            operation_timeout_secs: 20,
            options: &[("WINRS_SKIP_CMD_SHELL", "FALSE")],
            body: &body,
        }
        .to_xml();
        let doc = roxmltree::Document::parse(&xml).expect("well-formed");
        let args: Vec<_> = doc
            .descendants()
            .filter(|n| n.tag_name().name() == "Arguments")
            .map(|n| n.text().unwrap().to_string())
            .collect();
        assert_eq!(args, ["a&b", "<x>"]);
        assert!(xml.contains("<w:Selector Name=\"ShellId\">S-1</w:Selector>"));
        assert!(xml.contains("PT20.000S"));
    }

    #[test]
    fn fault_reads_wsman_message_and_code() {
        let xml = format!(
            "<s:Envelope xmlns:s=\"{NS_SOAP}\" xmlns:w=\"{NS_WSMAN}\"><s:Body><s:Fault>\
             <s:Code><s:Value>s:Receiver</s:Value><s:Subcode><s:Value>w:TimeoutFault</s:Value></s:Subcode></s:Code>\
             <s:Reason><s:Text xml:lang=\"en-US\">The WS-Management service cannot complete the operation within the time specified in OperationTimeout.  </s:Text></s:Reason>\
             <s:Detail><f:WSManFault xmlns:f=\"{NS_WSMAN_FAULT}\" Code=\"2150858793\" Machine=\"EX01\"><f:Message>timed out</f:Message></f:WSManFault></s:Detail>\
             </s:Fault></s:Body></s:Envelope>"
        );
        let fault = parse_fault(&xml).expect("a fault");
        assert_eq!(
            fault,
            WinrmError::Fault {
                subcode: "w:TimeoutFault".into(),
                reason: "timed out".into(),
                wsman_code: Some(FAULT_CODE_OPERATION_TIMEOUT)
            }
        );
        assert!(parse_fault("<x/>").is_none());
    }

    #[test]
    fn fault_text_loses_terminal_control_characters() {
        let xml = format!(
            "<s:Envelope xmlns:s=\"{NS_SOAP}\"><s:Body><s:Fault>\
             <s:Code><s:Value>s:Receiver</s:Value><s:Subcode><s:Value>w:Bad&#x9b;31m</s:Value></s:Subcode></s:Code>\
             <s:Reason><s:Text>Access&#x9b;2J&#xd;&#x85;denied</s:Text></s:Reason>\
             </s:Fault></s:Body></s:Envelope>"
        );
        let WinrmError::Fault {
            subcode, reason, ..
        } = parse_fault(&xml).expect("a fault")
        else {
            panic!("not a fault");
        };
        // XML 1.0 has no ESC or BEL, but C1 controls (CSI) and CR pass.
        assert_eq!(subcode, "w:Bad 31m");
        assert_eq!(reason, "Access 2J denied");
    }

    #[test]
    fn receive_collects_streams_and_exit_code() {
        let xml = format!(
            "<s:Envelope xmlns:s=\"{NS_SOAP}\" xmlns:rsp=\"{NS_SHELL}\"><s:Body><rsp:ReceiveResponse>\
             <rsp:Stream Name=\"stdout\" CommandId=\"C\">aGVs</rsp:Stream>\
             <rsp:Stream Name=\"stdout\" CommandId=\"C\" End=\"true\">bG8=</rsp:Stream>\
             <rsp:Stream Name=\"stderr\" CommandId=\"C\" End=\"true\"></rsp:Stream>\
             <rsp:CommandState CommandId=\"C\" State=\"{COMMAND_STATE_DONE}\"><rsp:ExitCode>1168</rsp:ExitCode></rsp:CommandState>\
             </rsp:ReceiveResponse></s:Body></s:Envelope>"
        );
        let r = parse_receive(&xml).unwrap();
        assert_eq!(r.stdout, b"hello");
        assert_eq!(r.exit_code, Some(1168));
        let running = xml.replace(COMMAND_STATE_DONE, COMMAND_STATE_RUNNING);
        assert_eq!(parse_receive(&running).unwrap().exit_code, None);
    }
}
