# install.mk -- "make install", "make uninstall" and "make lint-man".
#
#   make install [PREFIX=/usr/local] [DESTDIR=]
#   make uninstall [PREFIX=/usr/local] [DESTDIR=]
#
# PREFIX=/usr puts the configuration under /etc, any other prefix under
# PREFIX/etc. Each directory can be set on its own (SBINDIR=..., and so on).
# install never overwrites an existing coalesced.ini: the example is always
# installed beside it as coalesced.ini.example. uninstall removes what install
# added, but keeps a coalesced.ini that differs from the example.

# Included before the main Makefile's first rule: keep "all" the default goal.
install_mk_goal := $(.DEFAULT_GOAL)

PREFIX ?= /usr/local
DESTDIR ?=
SBINDIR ?= $(PREFIX)/sbin
MANDIR ?= $(PREFIX)/share/man
SYSCONFDIR ?= $(if $(filter /usr,$(PREFIX)),/etc,$(PREFIX)/etc)
SYSTEMDDIR ?= $(PREFIX)/lib/systemd/system
INSTALL ?= install

install_confdir = $(DESTDIR)$(SYSCONFDIR)/coalesced
install_unit = $(DESTDIR)$(SYSTEMDDIR)/coalesced.service

.PHONY: install uninstall lint-man

install: $(BIN)
	$(INSTALL) -D -m 755 "$(BIN)" "$(DESTDIR)$(SBINDIR)/coalesced"
	$(INSTALL) -D -m 644 man/coalesced.8 "$(DESTDIR)$(MANDIR)/man8/coalesced.8"
	$(INSTALL) -D -m 644 man/coalesced.ini.5 "$(DESTDIR)$(MANDIR)/man5/coalesced.ini.5"
	$(INSTALL) -D -m 644 conf/coalesced.ini "$(install_confdir)/coalesced.ini.example"
	@if [ -e "$(install_confdir)/coalesced.ini" ]; then \
		echo "keeping existing $(install_confdir)/coalesced.ini"; \
	else \
		echo "$(INSTALL) -m 644 conf/coalesced.ini $(install_confdir)/coalesced.ini"; \
		$(INSTALL) -m 644 conf/coalesced.ini "$(install_confdir)/coalesced.ini"; \
	fi
	$(INSTALL) -d -m 755 "$(DESTDIR)$(SYSTEMDDIR)"
	sed -e 's|@SBINDIR@|$(SBINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' \
		systemd/coalesced.service.in >"$(install_unit).tmp"
	chmod 644 "$(install_unit).tmp"
	mv -f "$(install_unit).tmp" "$(install_unit)"
	$(INSTALL) -m 644 systemd/coalesced.socket "$(DESTDIR)$(SYSTEMDDIR)/coalesced.socket"

uninstall:
	rm -f "$(DESTDIR)$(SBINDIR)/coalesced"
	rm -f "$(DESTDIR)$(MANDIR)/man8/coalesced.8" "$(DESTDIR)$(MANDIR)/man5/coalesced.ini.5"
	rm -f "$(install_unit)" "$(DESTDIR)$(SYSTEMDDIR)/coalesced.socket"
	@ini="$(install_confdir)/coalesced.ini"; \
	if [ -e "$$ini" ] && ! cmp -s "$$ini" "$$ini.example" && ! cmp -s "$$ini" conf/coalesced.ini; then \
		echo "keeping $$ini: it differs from the example"; \
	else \
		echo "rm -f $$ini"; rm -f "$$ini"; \
	fi
	rm -f "$(install_confdir)/coalesced.ini.example"
	@rmdir "$(install_confdir)" 2>/dev/null || true

# Any mandoc warning fails (mandoc exits non-zero on one with -Wwarning).
lint-man:
	mandoc -Tlint -Wwarning man/coalesced.8 man/coalesced.ini.5

CHECK_PRE += lint-man

.DEFAULT_GOAL := $(install_mk_goal)
