// AppDemo is what an Android app does with the bindings of package client (make bindings
// compiles it against them): make words, back up, lose the phone, find the vault from typed
// words (one wrong word is fixed), restore, verify, sign; and the same with shares. It is
// compiled, not run: running needs the Go library built for a device (gomobile bind).
import client.Client;
import client.Found;
import client.KeyInfo;
import client.Keys;
import client.Phone;
import client.ShareList;
import client.ShareProgress;
import client.Vault;
import client.Words;

public final class AppDemo {
    /** Progress is shown to the user: retries and slow steps (called on the calling thread). */
    static final class Log implements client.Progress {
        @Override
        public void step(String message) {
            System.err.println(message);
        }
    }

    // Every call below blocks (disk, network): an app makes them off the UI thread.
    public static void main(String[] args) throws Exception {
        Vault vault = Client.newVault("https://vault.example");
        vault.setProgress(new Log());
        Phone phone = Client.openPhone("/data/data/app/files/phone.db", vault);
        phone.addRemoteNode("https://tsm1.example", "");
        phone.addRemoteNode("https://tsm2.example", "");
        String keyID = phone.keyGen("eddsa", "main wallet");
        String twoOfThree = phone.keyGenThreshold("eddsa", "savings", 1); // any 2 of the 3 sign

        Words words = Client.newWords(24); // shown once, on the one screen that shows words
        Keys keys = words.keys(""); // no passphrase
        byte[] stored = keys.marshal(); // the app keeps these keys (never the words)
        KeyInfo backedUp = phone.backup(keys, keyID);
        System.out.println("backed up version " + backedUp.getSequence());
        words.wipe();
        phone.close();

        // A new phone: the user types the words.
        Phone fresh = Client.openPhone("/data/data/app/files/phone.db", vault);
        fresh.addRemoteNode("https://tsm1.example", "");
        fresh.addRemoteNode("https://tsm2.example", "");
        try {
            Found found = Client.findKeys(vault, "typed words ...", "");
            if (found.getPosition() != 0) {
                System.out.println("word " + found.getPosition() + " was corrected to " + found.getWord());
            }
            KeyInfo restored = fresh.restore(found.getKeys(), keyID);
            fresh.verify(found.getKeys(), keyID);
            System.out.println(fresh.sign(keyID, "hello") + " " + restored.getEpoch());
        } catch (Exception e) {
            // One line for the user; the kinds are the package's sentinels (docs/app.md).
            if (e.getMessage().contains(Client.getErrWrongWords().getMessage())) {
                System.out.println("check your words");
            } else {
                throw e;
            }
        }

        // Shares: "any 2 of these 3 sheets".
        Words more = Client.newWords(12);
        ShareList shares = more.shareList(2, 3);
        String typed = shares.at(0) + "\n\n" + shares.at(2);
        ShareProgress p = Client.restoreFromShares(typed);
        if (p.getMore() > 0) {
            System.out.println(p.getMore() + " more shares needed");
        } else {
            Keys again = Client.keysFromWords(p.getWords(), "");
            System.out.println(again.vaultID() + " " + Client.unmarshalKeys(stored).vaultID());
        }
        fresh.close();
    }
}
