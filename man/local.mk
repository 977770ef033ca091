dist_man_MANS += man/postern.conf.5 man/postern.8 man/master.8 man/auth.8 man/smtpd.8 man/local.8
dist_man_MANS += man/sendmail.1 man/mailq.1
dist_man_MANS += man/qmgr.8
dist_man_MANS += man/pop3d.8
