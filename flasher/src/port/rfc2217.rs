//! The client side of RFC 2217 (Telnet Com Port Control): option negotiation, escaping, and the
//! SET-BAUDRATE / SET-CONTROL commands that carry baud changes and DTR/RTS to a network serial
//! server such as esptool's `esp_rfc2217_server` or ser2net.

/// Interpret As Command: starts every Telnet command; doubled in data.
pub const IAC: u8 = 255;
const SE: u8 = 240;
const SB: u8 = 250;
const WILL: u8 = 251;
const WONT: u8 = 252;
const DO: u8 = 253;
const DONT: u8 = 254;

const BINARY: u8 = 0;
const SGA: u8 = 3;
/// The Com Port Control option.
pub const COM_PORT_OPTION: u8 = 44;

const SET_BAUDRATE: u8 = 1;
const SET_DATASIZE: u8 = 2;
const SET_PARITY: u8 = 3;
const SET_STOPSIZE: u8 = 4;
const SET_CONTROL: u8 = 5;

/// SET-CONTROL values.
const NO_FLOW_CONTROL: u8 = 1;
const DTR_ON: u8 = 8;
const DTR_OFF: u8 = 9;
const RTS_ON: u8 = 11;
const RTS_OFF: u8 = 12;

/// Options this client agrees to, in both directions.
const SUPPORTED: [u8; 3] = [BINARY, SGA, COM_PORT_OPTION];

/// One modem line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Line {
    /// Data Terminal Ready (IO0 on ESP boards with the usual auto-reset circuit).
    Dtr,
    /// Request To Send (EN).
    Rts,
}

/// Appends `data` with every IAC doubled.
pub fn escape(data: &[u8], out: &mut Vec<u8>) {
    for &b in data {
        out.push(b);
        if b == IAC {
            out.push(IAC);
        }
    }
}

fn com_port(command: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![IAC, SB, COM_PORT_OPTION, command];
    escape(payload, &mut out);
    out.extend([IAC, SE]);
    out
}

/// SET-BAUDRATE `baud`.
pub fn set_baud(baud: u32) -> Vec<u8> {
    com_port(SET_BAUDRATE, &baud.to_be_bytes())
}

/// SET-CONTROL for one line.
pub fn set_line(line: Line, on: bool) -> Vec<u8> {
    let value = match (line, on) {
        (Line::Dtr, true) => DTR_ON,
        (Line::Dtr, false) => DTR_OFF,
        (Line::Rts, true) => RTS_ON,
        (Line::Rts, false) => RTS_OFF,
    };
    com_port(SET_CONTROL, &[value])
}

/// The line settings of an ESP ROM loader: `baud` 8N1, no flow control.
pub fn line_settings(baud: u32) -> Vec<u8> {
    let mut out = set_baud(baud);
    out.extend(com_port(SET_DATASIZE, &[8]));
    out.extend(com_port(SET_PARITY, &[1]));
    out.extend(com_port(SET_STOPSIZE, &[1]));
    out.extend(com_port(SET_CONTROL, &[NO_FLOW_CONTROL]));
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OptState {
    Inactive,
    Requested,
    Active,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Parse {
    Data,
    Iac,
    Verb(u8),
    Sub,
    SubIac,
}

/// The Telnet side of a connection: splits what the server sends into serial data and
/// commands, and answers option negotiation.
#[derive(Debug)]
pub struct Telnet {
    parse: Parse,
    sub: Vec<u8>,
    we: [OptState; 256],
    they: [OptState; 256],
}

impl Telnet {
    /// A client and the bytes that open the negotiation (WILL and DO for binary mode,
    /// suppress-go-ahead and the Com Port option).
    pub fn new() -> (Telnet, Vec<u8>) {
        let mut t = Telnet {
            parse: Parse::Data,
            sub: Vec::new(),
            we: [OptState::Inactive; 256],
            they: [OptState::Inactive; 256],
        };
        let mut out = Vec::new();
        for opt in SUPPORTED {
            t.we[usize::from(opt)] = OptState::Requested;
            t.they[usize::from(opt)] = OptState::Requested;
            out.extend([IAC, WILL, opt, IAC, DO, opt]);
        }
        (t, out)
    }

    /// Whether the server agreed to the Com Port option.
    pub fn com_port_active(&self) -> bool {
        let i = usize::from(COM_PORT_OPTION);
        self.we[i] == OptState::Active || self.they[i] == OptState::Active
    }

    /// Feeds bytes from the server: serial data goes to `data`, answers to `reply`.
    /// Com Port notifications (modem and line state) are read and dropped.
    pub fn feed(&mut self, input: &[u8], data: &mut Vec<u8>, reply: &mut Vec<u8>) {
        for &b in input {
            self.parse = match (self.parse, b) {
                (Parse::Data, IAC) => Parse::Iac,
                (Parse::Data, _) => {
                    data.push(b);
                    Parse::Data
                }
                (Parse::Iac, IAC) => {
                    data.push(IAC);
                    Parse::Data
                }
                (Parse::Iac, WILL | WONT | DO | DONT) => Parse::Verb(b),
                (Parse::Iac, SB) => {
                    self.sub.clear();
                    Parse::Sub
                }
                (Parse::Iac, _) => Parse::Data,
                (Parse::Verb(verb), opt) => {
                    self.negotiate(verb, opt, reply);
                    Parse::Data
                }
                (Parse::Sub, IAC) => Parse::SubIac,
                (Parse::Sub, _) => {
                    self.sub.push(b);
                    Parse::Sub
                }
                (Parse::SubIac, IAC) => {
                    self.sub.push(IAC);
                    Parse::Sub
                }
                (Parse::SubIac, _) => Parse::Data,
            }
        }
    }

    fn negotiate(&mut self, verb: u8, opt: u8, reply: &mut Vec<u8>) {
        let supported = SUPPORTED.contains(&opt);
        let i = usize::from(opt);
        match verb {
            DO | DONT => {
                let (yes, no) = (WILL, WONT);
                let state = &mut self.we[i];
                Self::answer(verb == DO, supported, state, yes, no, opt, reply);
            }
            _ => {
                let (yes, no) = (DO, DONT);
                let state = &mut self.they[i];
                Self::answer(verb == WILL, supported, state, yes, no, opt, reply);
            }
        }
    }

    fn answer(
        asked_on: bool,
        supported: bool,
        state: &mut OptState,
        yes: u8,
        no: u8,
        opt: u8,
        reply: &mut Vec<u8>,
    ) {
        match (asked_on, supported, *state) {
            (true, true, OptState::Active) => {}
            (true, true, OptState::Requested) => *state = OptState::Active,
            (true, true, OptState::Inactive) => {
                reply.extend([IAC, yes, opt]);
                *state = OptState::Active;
            }
            (true, false, _) => reply.extend([IAC, no, opt]),
            (false, _, OptState::Active) => {
                reply.extend([IAC, no, opt]);
                *state = OptState::Inactive;
            }
            (false, _, _) => *state = OptState::Inactive,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_escaped() {
        assert_eq!(
            set_baud(115_200),
            [IAC, SB, 44, 1, 0x00, 0x01, 0xC2, 0x00, IAC, SE]
        );
        // 0x00FF_FF00: each 0xFF doubled.
        assert_eq!(
            set_baud(0x00FF_FF00),
            [IAC, SB, 44, 1, 0, IAC, IAC, IAC, IAC, 0, IAC, SE]
        );
        assert_eq!(set_line(Line::Dtr, false), [IAC, SB, 44, 5, 9, IAC, SE]);
        assert_eq!(set_line(Line::Rts, true), [IAC, SB, 44, 5, 11, IAC, SE]);
        let mut out = Vec::new();
        escape(&[1, IAC, 2], &mut out);
        assert_eq!(out, [1, IAC, IAC, 2]);
    }

    #[test]
    fn negotiation_and_data() {
        let (mut t, hello) = Telnet::new();
        assert!(hello.windows(3).any(|w| w == [IAC, WILL, 44]));
        assert!(!t.com_port_active());
        let (mut data, mut reply) = (Vec::new(), Vec::new());
        // What pyserial's PortManager sends: WILL ECHO, WILL SGA, DO BINARY, WILL COM-PORT,
        // then DO COM-PORT in answer to ours, a modem state notification and data with an IAC.
        let input = [
            IAC, WILL, 1, IAC, WILL, 3, IAC, DO, 0, IAC, WILL, 44, IAC, DO, 44, IAC, SB, 44, 107,
            0x30, IAC, SE, 0xC0, IAC, IAC, 0xC0,
        ];
        // Split anywhere: the parser keeps its state between calls.
        t.feed(&input[..13], &mut data, &mut reply);
        t.feed(&input[13..], &mut data, &mut reply);
        assert!(t.com_port_active());
        assert_eq!(data, [0xC0, IAC, 0xC0]);
        // Only ECHO is refused; everything else had been requested already.
        assert_eq!(reply, [IAC, DONT, 1]);
        reply.clear();
        t.feed(&[IAC, DONT, 0, IAC, DO, 24], &mut data, &mut reply);
        assert_eq!(reply, [IAC, WONT, 0, IAC, WONT, 24]);
    }
}
