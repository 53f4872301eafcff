// The modules a program that sends mail needs, so that `import Outbox` is the only import:
// MessageBuilder and MailAddress (MailMessage), SASLCredentials, Secret, SMTPReply and SMTPError
// (SMTPCore), TLSMode, TLSConfiguration and Envelope (SMTPClient), and StoredMessage (MailStore).
@_exported import MailMessage
@_exported import MailStore
@_exported import SMTPClient
@_exported import SMTPCore
