package keysource

import (
	"context"
	"time"

	vault "github.com/hashicorp/vault/api"
	"go.uber.org/zap"
)

// renew keeps a renewable token alive: it renews (auth/token/renew-self)
// when half of the remaining TTL has passed, retrying sooner after a
// failure, until Close. Non-renewable tokens (root, batch, or periodic
// tokens managed elsewhere) need nothing and the renewer exits at once.
func (m *vaultMaster) renew(lookup *vault.Secret) {
	defer close(m.done)
	renewable, ttl := tokenLife(lookup)
	if !renewable || ttl <= 0 {
		return
	}
	log := m.logger()
	for {
		wait := max(ttl/2, m.opts.renewFloor)
		if !m.waitOrStop(wait) {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*m.opts.timeout)
		sec, err := m.call(ctx, "vault token renew", func(ctx context.Context) (*vault.Secret, error) {
			return m.client.Auth().Token().RenewSelfWithContext(ctx, 0)
		})
		cancel()
		if err != nil {
			log.Warn("keysource: vault token renewal failed", zap.Error(err))
			ttl = wait // retry at half the time left, roughly
			continue
		}
		if sec == nil || sec.Auth == nil || !sec.Auth.Renewable || sec.Auth.LeaseDuration <= 0 {
			log.Info("keysource: vault token is no longer renewable; renewer stops")
			return
		}
		ttl = time.Duration(sec.Auth.LeaseDuration) * time.Second
		log.Debug("keysource: vault token renewed", zap.Duration("ttl", ttl))
	}
}

// tokenLife reads renewable and ttl from a lookup-self response.
func tokenLife(sec *vault.Secret) (bool, time.Duration) {
	if sec == nil || sec.Data == nil {
		return false, 0
	}
	renewable, _ := sec.Data["renewable"].(bool)
	ttl, _ := jsonInt(sec.Data["ttl"])
	return renewable, time.Duration(ttl) * time.Second
}
